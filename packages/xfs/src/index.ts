export { xfsDriver } from './driver.js';
export { XFS_REASONS, XFS_WARNINGS, type XfsReason, type XfsWarning } from './reasons.js';
