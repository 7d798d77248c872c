export { btrfsDriver } from './driver.js';
export {
  BTRFS_REASONS,
  BTRFS_WARNINGS,
  type BtrfsReason,
  type BtrfsWarning,
} from './reasons.js';
