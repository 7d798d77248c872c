export type { DiskLocation, PvLabel } from './label.js';
export { lvmVolumeManager } from './manager.js';
export type { LvEntry, PvEntry, Segment, Stripe, VolumeGroup } from './metadata.js';
export { parseVolumeGroup } from './metadata.js';
export {
  type PhysicalVolume,
  probePhysicalVolume,
  readPhysicalVolume,
} from './physical-volume.js';
export { LVM_REASONS, LVM_WARNINGS, type LvmReason, type LvmWarning } from './reasons.js';
export type { LogicalVolume } from './volume.js';
