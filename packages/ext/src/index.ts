export { extDriver } from './driver.js';
export { EXT_REASONS, EXT_WARNINGS, type ExtReason, type ExtWarning } from './reasons.js';
export { parseSuperblock, type Superblock } from './superblock.js';
