export { type Attribute, parseAttributes } from './attribute.js';
export { type AttributeListEntry, parseAttributeList } from './attribute-list.js';
export { type BootSector, decodeRecordSize, parseBootSector } from './boot-sector.js';
export { ntfsDriver } from './driver.js';
export { type LogFileState, logFileState } from './logfile.js';
export { applyFixups, type MftRecordHeader, parseMftRecord } from './mft-record.js';
export {
  NTFS_REASONS,
  NTFS_WARNINGS,
  type NtfsReason,
  type NtfsWarning,
} from './reasons.js';
export { decodeRunlist, type Run } from './runlist.js';
export { NtfsVolume } from './volume.js';
