export type { ChainLayer, ParentHint, ResolveParent } from './chain.js';
export {
  type ContainerInfo,
  detectContainer,
  type OpenContainerOptions,
  type OpenedContainer,
  openContainer,
} from './container.js';
export type { ContainerDisk, ContainerFormat } from './disk.js';
export {
  createDiskWriter,
  type DiskSink,
  type DiskWriter,
  type DiskWriterFormat,
  type DiskWriterOptions,
  type StagingSink,
} from './disk-writer.js';
export { type Qcow2Bitmap, readQcow2Bitmaps } from './qcow2-bitmaps.js';
export {
  CONTAINER_REASONS,
  CONTAINER_WARNINGS,
  type ContainerReason,
  type ContainerWarning,
} from './reasons.js';
