import { describeErrorVocabulary } from '@diskube/core/test';
import { RESTORE_REASONS } from './reasons.js';

describeErrorVocabulary('restore', {
  dir: new URL('.', import.meta.url),
  reasons: RESTORE_REASONS,
  warnings: Object.freeze([]),
});
