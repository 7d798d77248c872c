export type {
  BackupInfo,
  ByteRange,
  CompressOptions,
  Progress,
  VerifyReport,
} from '@diskube/format';
export { parseChangedRanges } from '@diskube/format';
export type { RestoreStrategy, RestoreTarget } from '@diskube/restore';
export { type BackupOptions, type BackupResult, backup } from './node/backup.js';
export { inspectImageFile, type OpenImageFileOptions, openImageFile } from './node/open-file.js';
export {
  type RestoreFormat,
  type RestoreOptions,
  type RestoreSummary,
  restore,
  restoreFormatOf,
} from './node/restore.js';
export { backupInfo, type VerifyOptions, type VerifyResult, verify } from './node/verify.js';
