export {
  type DiskMap,
  type DiskMapOptions,
  type DiskPart,
  type DiskVolume,
  type DiskVolumeGroup,
  mapDisk,
} from './disk-map.js';
export type { Partition, PartitionTable } from './partition.js';
export {
  PARTITION_REASONS,
  PARTITION_WARNINGS,
  type PartitionReason,
  type PartitionWarning,
} from './reasons.js';
export { probeSwap, type SwapArea } from './swap.js';
export { readPartitionTable } from './table.js';
