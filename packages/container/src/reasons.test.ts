import { describeErrorVocabulary } from '@diskube/core/test';
import { CONTAINER_REASONS, CONTAINER_WARNINGS } from './reasons.js';

describeErrorVocabulary('container', {
  dir: new URL('.', import.meta.url),
  reasons: CONTAINER_REASONS,
  warnings: CONTAINER_WARNINGS,
  inherited: ['truncated', 'too-large'],
});
