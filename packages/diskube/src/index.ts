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
  type Volume,
  type VolumeGroupLayout,
  type VolumeManager,
  type Warning,
} from '@diskube/core';
export type {
  DiskMap,
  DiskPart,
  DiskVolume,
  DiskVolumeGroup,
  Partition,
  PartitionTable,
} from '@diskube/partition';
export { defaultDrivers, defaultVolumeManagers } from './drivers.js';
export { type DiskImage, type OpenImageOptions, openImage } from './image.js';
export {
  type InspectedFilesystem,
  type InspectedLayer,
  type InspectedPart,
  type InspectedVolume,
  type InspectedVolumeGroup,
  type Inspection,
  type InspectOptions,
  inspectImage,
} from './inspect.js';
export { type MapOptions, mapImage, usedByteRanges, usedBytes } from './map.js';
