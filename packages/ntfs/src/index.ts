export { type BootSector, parseBootSector } from './boot-sector.js';
export { ntfsDriver } from './driver.js';
export {
  NTFS_REASONS,
  NTFS_WARNINGS,
  type NtfsReason,
  type NtfsWarning,
} from './reasons.js';
