import { describeErrorVocabulary } from '@diskube/core/test';
import { FORMAT_REASONS } from './reasons.js';

describeErrorVocabulary('format', {
  dir: new URL('.', import.meta.url),
  reasons: FORMAT_REASONS,
  warnings: Object.freeze([]),
});
