export { Bitmap } from '@diskube/bitmap';
export type { ContainerFormat, ContainerInfo } from '@diskube/container';
export {
  type BlobLike,
  type BlockSource,
  blobSource,
  CorruptError,
  type CrossCheckReport,
  DirtyFilesystemError,
  DiskubeError,
  type ErrorCode,
  type FilesystemDriver,
  hasErrorCode,
  InvalidArgumentError,
  IoError,
  memorySource,
  UnsupportedError,
  type Warning,
} from '@diskube/core';
export type { DiskMap, DiskPart, Partition, PartitionTable } from '@diskube/partition';
export { defaultDrivers } from './drivers.js';
export { type DiskImage, type OpenImageOptions, openImage } from './image.js';
export {
  type InspectedPart,
  type Inspection,
  type InspectOptions,
  inspectImage,
} from './inspect.js';
export { type MapOptions, mapImage, usedByteRanges, usedBytes } from './map.js';
