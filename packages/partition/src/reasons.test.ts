import { describeErrorVocabulary } from '@diskube/core/test';
import { PARTITION_REASONS, PARTITION_WARNINGS } from './reasons.js';

describeErrorVocabulary('partition', {
  dir: new URL('.', import.meta.url),
  reasons: PARTITION_REASONS,
  warnings: PARTITION_WARNINGS,
});
