import { describeErrorVocabulary } from '@diskube/core/test';
import { NTFS_REASONS, NTFS_WARNINGS } from './reasons.js';

describeErrorVocabulary('ntfs', {
  dir: new URL('.', import.meta.url),
  reasons: NTFS_REASONS,
  warnings: NTFS_WARNINGS,
});
