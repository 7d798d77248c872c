import { describeErrorVocabulary } from '@diskube/core/test';
import { BTRFS_REASONS, BTRFS_WARNINGS } from './reasons.js';

describeErrorVocabulary('btrfs', {
  dir: new URL('.', import.meta.url),
  reasons: BTRFS_REASONS,
  warnings: BTRFS_WARNINGS,
  // Thrown for the parsers by core's FieldReader.
  inherited: ['truncated', 'too-large'],
});
