export { crc16, crc32c, crc32cRaw } from './checksum.js';
export { extDriver, filesystemName } from './driver.js';
export { COMPAT, featureNames, INCOMPAT, RO_COMPAT } from './features.js';
export {
  BG_BLOCK_UNINIT,
  BG_INODE_UNINIT,
  BG_INODE_ZEROED,
  blockBitmapChecksum,
  type GroupDescriptor,
  groupDescriptorChecksum,
  parseGroupDescriptor,
} from './group-descriptor.js';
export { descriptorBlock, groupHasSuper, groupOverhead } from './layout.js';
export { type Mmp, parseMmp } from './mmp.js';
export { EXT_REASONS, EXT_WARNINGS, type ExtReason, type ExtWarning } from './reasons.js';
export {
  type Geometry,
  geometry,
  parseSuperblock,
  type Superblock,
  superblockChecksum,
} from './superblock.js';
