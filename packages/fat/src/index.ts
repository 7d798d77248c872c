export { fatDriver } from './driver.js';
export { FAT_REASONS, FAT_WARNINGS, type FatReason, type FatWarning } from './reasons.js';
