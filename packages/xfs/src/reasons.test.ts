import { describeErrorVocabulary } from '@diskube/core/test';
import { XFS_REASONS, XFS_WARNINGS } from './reasons.js';

describeErrorVocabulary('xfs', {
  dir: new URL('.', import.meta.url),
  reasons: XFS_REASONS,
  warnings: XFS_WARNINGS,
  // Thrown for the parsers by core's FieldReader.
  inherited: ['truncated', 'too-large'],
});
