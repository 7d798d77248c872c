import { crc32c, DirtyFilesystemError, FieldReader, UnsupportedError } from '@diskube/core';
import { isPowerOfTwo } from './read.js';
import type { ContainerReason } from './reasons.js';

// Sources: Microsoft [MS-VHDX] "Virtual Hard Disk v2 (VHDX) File Format" §2.2 (header section:
// file type identifier, headers, region table), §2.6 (metadata region and known items), §2.5
// (BAT). All numbers are little-endian; GUIDs use the Microsoft mixed-endian layout.

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** The header and region table checksums are CRC-32C over the structure with the field zeroed. */
function checksumOk(bytes: Uint8Array, at: number): boolean {
  const copy = bytes.slice();
  copy.fill(0, at, at + 4);
  const stored =
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  return crc32c(copy) === stored;
}

export interface VhdxHeader {
  sequenceNumber: bigint;
  /** DataWriteGuid (0x20): a differencing child's `parent_linkage` names it. */
  dataWriteGuid: string;
  logGuid: string;
  logLength: number;
  logOffset: number;
}

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** Parse one 4 KiB header (at 64 KiB or 128 KiB); null when its signature or checksum is bad. */
export function parseVhdxHeader(bytes: Uint8Array, base: number): VhdxHeader | null {
  if (bytes.length < 4 * KiB) return null;
  const f = new FieldReader<ContainerReason>(bytes.subarray(0, 4 * KiB), 'VHDX header', base);
  if (f.ascii(0, 4) !== 'head' || !checksumOk(f.bytes, 4)) return null;
  const version = f.u16le(0x42);
  if (version !== 1) {
    throw new UnsupportedError(`VHDX version ${version} is not supported`, {
      structure: 'VHDX header',
      offset: base + 0x42,
      reason: 'version',
    });
  }
  return {
    sequenceNumber: f.u64leBig(0x08),
    dataWriteGuid: f.guid(0x20),
    logGuid: f.guid(0x30),
    logLength: f.u32le(0x44),
    logOffset: f.u64le(0x48, 'LogOffset'),
  };
}

/**
 * Pick the current header: the valid one with the higher sequence number. A non-empty log
 * (LogGuid not zero) means writes may be pending in the log that the BAT and payload do not yet
 * show; replaying it is out of scope, so the file is refused as dirty (open it once in Hyper-V
 * or `qemu-img check -r all` to replay).
 */
export function currentVhdxHeader(h1: VhdxHeader | null, h2: VhdxHeader | null): VhdxHeader | null {
  const header = h1 && h2 ? (h2.sequenceNumber > h1.sequenceNumber ? h2 : h1) : (h1 ?? h2);
  if (header && header.logGuid !== ZERO_GUID) {
    throw new DirtyFilesystemError('the VHDX log is not empty (LogGuid set): replay it first', {
      structure: 'VHDX header',
      offset: h1 === header ? 64 * KiB + 0x30 : 128 * KiB + 0x30,
      reason: 'vhdx-log',
    });
  }
  return header;
}

export const BAT_GUID = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_GUID = '8b7ca206-4790-4b9a-b8fe-575f050f886e';

export interface VhdxRegion {
  guid: string;
  fileOffset: number;
  length: number;
  required: boolean;
}

/** Parse a 64 KiB region table; null when its signature or checksum is bad. */
export function parseVhdxRegionTable(bytes: Uint8Array, base: number): VhdxRegion[] | null {
  if (bytes.length < 64 * KiB) return null;
  const f = new FieldReader<ContainerReason>(
    bytes.subarray(0, 64 * KiB),
    'VHDX region table',
    base,
  );
  if (f.ascii(0, 4) !== 'regi' || !checksumOk(f.bytes, 4)) return null;
  const entryCount = f.u32le(0x08);
  // 2047 entries fill the 64 KiB table exactly.
  if (entryCount > 2047)
    throw f.corrupt(`${entryCount} region entries (max 2047)`, 0x08, 'too-large');
  const regions: VhdxRegion[] = [];
  for (let i = 0; i < entryCount; i++) {
    const at = 16 + i * 32;
    const guid = f.guid(at);
    const fileOffset = f.u64le(at + 16, 'FileOffset');
    const length = f.u32le(at + 24);
    const required = (f.u32le(at + 28) & 1) !== 0;
    if (fileOffset % MiB !== 0 || length % MiB !== 0 || fileOffset < MiB) {
      throw f.corrupt(
        `region ${guid} is not 1 MiB aligned or overlaps the header`,
        at,
        'unaligned',
      );
    }
    if (guid !== BAT_GUID && guid !== METADATA_GUID && required) {
      throw new UnsupportedError(`unknown required VHDX region ${guid}`, {
        structure: 'VHDX region table',
        offset: base + at,
        reason: 'incompatible-feature',
      });
    }
    regions.push({ guid, fileOffset, length, required });
  }
  return regions;
}

const FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
const VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
const VIRTUAL_DISK_ID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
const LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
const PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556';
const PARENT_LOCATOR = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';
const KNOWN_METADATA = new Set([
  FILE_PARAMETERS,
  VIRTUAL_DISK_SIZE,
  VIRTUAL_DISK_ID,
  LOGICAL_SECTOR_SIZE,
  PHYSICAL_SECTOR_SIZE,
  PARENT_LOCATOR,
]);

export interface VhdxMetadata {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  /**
   * The Parent Locator item's key/value pairs (`parent_linkage`, `relative_path`,
   * `volume_path`, `absolute_win32_path` …) when the item is present; `{}` when present but
   * unreadable.
   */
  parentLocator: Record<string, string> | undefined;
  virtualDiskSize: number;
  logicalSectorSize: number;
}

/**
 * The key/value pairs of a Parent Locator item ([MS-VHDX] §2.6.2.6): LocatorType GUID (16),
 * Reserved u16, KeyValueCount u16, then entries {KeyOffset u32, ValueOffset u32, KeyLength u16,
 * ValueLength u16}; offsets are from the item's start, strings UTF-16LE. Only used to name the
 * parent in a refusal, so a damaged locator yields what could be read rather than an error.
 */
function parseParentLocator(
  f: FieldReader<ContainerReason>,
  at: number,
  length: number,
): Record<string, string> {
  const pairs: Record<string, string> = {};
  const text = (offset: number, bytes: number) => {
    if (offset + bytes > length || bytes % 2 !== 0 || bytes > 2048) return undefined;
    let value = '';
    for (let i = 0; i < bytes; i += 2) value += String.fromCharCode(f.u16le(at + offset + i));
    return value;
  };
  if (length < 20) return pairs;
  const count = Math.min(f.u16le(at + 18), Math.floor((length - 20) / 12));
  for (let i = 0; i < count; i++) {
    const e = at + 20 + i * 12;
    const key = text(f.u32le(e), f.u16le(e + 8));
    const value = text(f.u32le(e + 4), f.u16le(e + 10));
    if (key !== undefined && value !== undefined) pairs[key] = value;
  }
  return pairs;
}

/** Parse the metadata region (its table in the first 64 KiB, items after it). */
export function parseVhdxMetadata(bytes: Uint8Array, base: number): VhdxMetadata {
  const f = new FieldReader<ContainerReason>(bytes, 'VHDX metadata', base);
  if (f.ascii(0, 8) !== 'metadata') throw f.corrupt('bad metadata table signature', 0, 'bad-magic');
  const entryCount = f.u16le(0x0a);
  if (entryCount > 2047)
    throw f.corrupt(`${entryCount} metadata entries (max 2047)`, 0x0a, 'too-large');
  const items = new Map<string, { offset: number; length: number }>();
  for (let i = 0; i < entryCount; i++) {
    const at = 32 + i * 32;
    const id = f.guid(at);
    const offset = f.u32le(at + 16);
    const length = f.u32le(at + 20);
    const flags = f.u32le(at + 24);
    if (length > 0 && (offset < 64 * KiB || offset + length > bytes.length)) {
      throw f.corrupt(
        `metadata item ${id} lies outside the metadata region`,
        at + 16,
        'out-of-range',
      );
    }
    if (!KNOWN_METADATA.has(id) && flags & 4) {
      throw new UnsupportedError(`unknown required VHDX metadata item ${id}`, {
        structure: 'VHDX metadata',
        offset: base + at,
        reason: 'incompatible-feature',
      });
    }
    items.set(id, { offset, length });
  }
  const item = (id: string, min: number, name: string) => {
    const it = items.get(id);
    if (!it || it.length < min) throw f.corrupt(`metadata item ${name} is missing`, 0, 'missing');
    return it.offset;
  };
  const fp = item(FILE_PARAMETERS, 8, 'File Parameters');
  const blockSize = f.u32le(fp);
  const fpFlags = f.u32le(fp + 4);
  const virtualDiskSize = f.u64le(
    item(VIRTUAL_DISK_SIZE, 8, 'Virtual Disk Size'),
    'VirtualDiskSize',
  );
  const lss = item(LOGICAL_SECTOR_SIZE, 4, 'Logical Sector Size');
  const logicalSectorSize = f.u32le(lss);
  if (!isPowerOfTwo(blockSize) || blockSize < MiB || blockSize > 256 * MiB) {
    throw f.corrupt(`block size ${blockSize} outside 1..256 MiB`, fp, 'bad-geometry');
  }
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) {
    throw f.corrupt(`logical sector size ${logicalSectorSize}`, lss, 'bad-geometry');
  }
  // The spec caps virtual disks at 64 TiB.
  if (virtualDiskSize % logicalSectorSize !== 0 || virtualDiskSize > 64 * 2 ** 40) {
    throw f.corrupt(`virtual disk size ${virtualDiskSize} is invalid`, 0, 'bad-geometry');
  }
  const locator = items.get(PARENT_LOCATOR);
  return {
    blockSize,
    parentLocator: locator ? parseParentLocator(f, locator.offset, locator.length) : undefined,
    leaveBlocksAllocated: (fpFlags & 1) !== 0,
    hasParent: (fpFlags & 2) !== 0,
    virtualDiskSize,
    logicalSectorSize,
  };
}
