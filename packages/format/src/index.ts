export { ChainState, checkChain, type StateDigestSource, type StateWindow } from './chain.js';
export {
  type ByteRange,
  formatChangedRanges,
  parseChangedRanges,
  rangesToBlocks,
} from './changed-ranges.js';
export { type CompressOptions, DEFAULT_ZSTD_LEVEL } from './compress.js';
export { crc32c } from './crc32c.js';
export { blockDigest } from './digest.js';
export { FOOTER_LENGTH, type Footer } from './footer.js';
export type { FrameEntry } from './frame-index.js';
export {
  type BackupKind,
  type CompressionType,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  type Header,
  INCOMPAT_NO_DIGEST_TABLE,
  INCOMPAT_REPEATS,
} from './header.js';
export {
  type BackupInfo,
  BackupReader,
  type BlockWindow,
  DEFAULT_WINDOW_BLOCKS,
  openBackup,
  type Progress,
  readBackupHeader,
  type VerifyProblem,
  type VerifyReport,
  verifyBackup,
} from './reader.js';
export { FORMAT_REASONS, type FormatReason } from './reasons.js';
export {
  type CachedStateDigests,
  STATE_DIGESTS_MAX_AGE_MS,
  StateDigestCache,
  type StateDigestWriter,
} from './state-cache.js';
export {
  type BackupMeta,
  DEFAULT_FRAME_BYTES,
  defaultThreads,
  type IncrementalOptions,
  MAX_DEFAULT_THREADS,
  type StateDigestSink,
  type WriteOptions,
  type WriteResult,
  writeIncremental,
  writeSnapshot,
} from './writer.js';
