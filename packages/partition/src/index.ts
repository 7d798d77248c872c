export { crc32 } from './crc32.js';
export { type DiskMap, type DiskMapOptions, type DiskPart, mapDisk } from './disk-map.js';
export {
  formatGuid,
  type GptEntry,
  type GptHeader,
  gptTypeName,
  parseGptEntries,
  parseGptHeader,
} from './gpt.js';
export { type MbrEntry, mbrTypeName, parseMbrSector } from './mbr.js';
export type { Partition, PartitionTable } from './partition.js';
export {
  PARTITION_REASONS,
  PARTITION_WARNINGS,
  type PartitionReason,
  type PartitionWarning,
} from './reasons.js';
export { probeSwap, type SwapArea } from './swap.js';
export { MAX_LOGICAL_PARTITIONS, readPartitionTable } from './table.js';
