import { describeErrorVocabulary } from '@diskube/core/test';
import { FAT_REASONS, FAT_WARNINGS } from './reasons.js';

describeErrorVocabulary('fat', {
  dir: new URL('.', import.meta.url),
  reasons: FAT_REASONS,
  warnings: FAT_WARNINGS,
});
