export {
  type Backend,
  isNotFound,
  isValidKey,
  OBJECT_STORE_CHUNK_SIZE,
  type ObjectInfo,
} from './backend.js';
export {
  type BackupToRepositoryOptions,
  type BackupToRepositoryResult,
  backupToRepository,
  type RepositoryProgress,
} from './backup.js';
export { sweepOnceADay } from './digest-cache.js';
export {
  acquireLock,
  type HeldLock,
  LOST_AFTER_MS,
  type LockInfo,
  listLocks,
  REFRESH_EVERY_MS,
  STALE_AFTER_MS,
  unlockRepository,
} from './locks.js';
export {
  type ForgetPolicy,
  type ForgetResult,
  forget,
  type GroupStats,
  type MaintenanceOptions,
  type PruneResult,
  prune,
  type StatsResult,
  stats,
  type VerifyProblem,
  type VerifyRepositoryResult,
  verifyRepository,
} from './maintenance.js';
export type { ChunkCodec } from './object.js';
export { REPOSITORY_REASONS, type RepositoryReason } from './reasons.js';
export {
  CHUNKS_PER_INDEX,
  DEFAULT_CHUNK_SIZE,
  type InitOptions,
  initRepository,
  type LockOwner,
  type ObjectCache,
  type OpenOptions,
  openRepository,
  REPOSITORY_VERSION,
  type Repository,
  type RepositoryConfig,
} from './repository.js';
export {
  type RestoreSink,
  type RestoreSnapshotOptions,
  type RestoreSnapshotResult,
  restoreSnapshot,
} from './restore.js';
export {
  listSnapshots,
  readUsedMap,
  resolveSnapshot,
  type SnapshotInfo,
  type SnapshotManifest,
} from './snapshots.js';
export { zstdCodec } from './zstd.js';
