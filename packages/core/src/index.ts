export { type BlobLike, blobSource } from './blob.js';
export { crc32, crc32Update } from './crc32.js';
export { crc32c, crc32cUpdate } from './crc32c.js';
export type {
  CrossCheckReport,
  FilesystemDriver,
  ProbeResult,
  Tail,
  UsedBlocks,
  UsedBlocksOptions,
  Warning,
} from './driver.js';
export {
  CorruptError,
  DirtyFilesystemError,
  DiskubeError,
  type ErrorCode,
  type ErrorContext,
  hasErrorCode,
  InvalidArgumentError,
  IoError,
  UnsupportedError,
} from './errors.js';
export { FieldReader } from './fields.js';
export {
  CORE_REASONS,
  type CoreReason,
  SHARED_CORRUPT_REASONS,
  type SharedCorruptReason,
} from './reasons.js';
export {
  type BlockSource,
  checkRange,
  memorySource,
  readBytes,
  readStructure,
  sliceSource,
} from './source.js';
export type { Volume, VolumeGroupLayout, VolumeManager } from './volumes.js';
