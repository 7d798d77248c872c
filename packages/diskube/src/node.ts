export type {
  BackupInfo,
  ByteRange,
  CompressOptions,
  Progress,
  VerifyReport,
} from '@diskube/format';
export { parseChangedRanges } from '@diskube/format';
export {
  type ForgetPolicy,
  type ForgetResult,
  forget,
  type LockInfo,
  listLocks,
  listSnapshots,
  type PruneResult,
  prune,
  type Repository,
  type RepositoryProgress,
  type SnapshotInfo,
  type StatsResult,
  stats,
  unlockRepository,
  type VerifyProblem,
  type VerifyRepositoryResult,
  verifyRepository,
} from '@diskube/repository';
export { defaultCacheDir } from '@diskube/repository/node';
export type { RestoreStrategy, RestoreTarget } from '@diskube/restore';
export { type BackupOptions, type BackupResult, backup } from './node/backup.js';
export { inspectImageFile, type OpenImageFileOptions, openImageFile } from './node/open-file.js';
export type { LayerFact } from './node/overlay.js';
export {
  backupImageToRepository,
  initRepositoryAt,
  openRepositoryAt,
  type RepositoryBackupOptions,
  type RepositoryBackupResult,
  type RepositoryLocationOptions,
  type RepositoryRestoreOptions,
  restoreFromRepository,
} from './node/repository.js';
export {
  type RestoreFormat,
  type RestoreOptions,
  type RestoreSummary,
  restore,
  restoreFormatOf,
} from './node/restore.js';
export { backupInfo, type VerifyOptions, type VerifyResult, verify } from './node/verify.js';
