import { describeErrorVocabulary } from '@diskube/core/test';
import { REPOSITORY_REASONS } from './reasons.js';
import { S3_REASONS } from './s3.js';

describeErrorVocabulary('repository', {
  dir: new URL('.', import.meta.url),
  // One directory holds both lists: the repository's and the S3 backend's (`./s3`).
  reasons: Object.freeze([...new Set<string>([...REPOSITORY_REASONS, ...S3_REASONS])]),
  warnings: Object.freeze([] as const),
  // Thrown for the object parser by core's FieldReader.
  inherited: ['truncated', 'too-large'],
});
