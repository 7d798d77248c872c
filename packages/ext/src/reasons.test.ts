import { describeErrorVocabulary } from '@diskube/core/test';
import { EXT_REASONS, EXT_WARNINGS } from './reasons.js';

describeErrorVocabulary('ext', {
  dir: new URL('.', import.meta.url),
  reasons: EXT_REASONS,
  warnings: EXT_WARNINGS,
});
