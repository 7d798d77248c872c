// Sources: UEFI Specification 2.10, §5.3 "GUID Partition Table (GPT) Disk Layout"
// (tables 5-5 GPT header, 5-6 GPT partition entry). Integers little-endian; GUIDs in the
// mixed-endian EFI_GUID layout (first three fields little-endian).
import { CorruptError } from '@diskube/core';
import { crc32 } from './crc32.js';

export const GPT_SIGNATURE = 'EFI PART';
/** Entry arrays larger than this are refused: denied to prevent allocating too large buffers. */
export const MAX_ENTRY_ARRAY_BYTES = 4 << 20;

export interface GptHeader {
  revision: number;
  headerSize: number;
  myLba: bigint;
  alternateLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  diskGuid: string;
  entriesLba: bigint;
  entryCount: number;
  entrySize: number;
  entriesCrc32: number;
}

export interface GptEntry {
  index: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: bigint;
  lastLba: bigint;
  attributes: bigint;
  name: string;
}

/** EFI_GUID → canonical upper-case text. */
export function formatGuid(bytes: Uint8Array): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = Array.from(bytes.subarray(from, to));
    if (reverse) part.reverse();
    return part.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)]
    .join('-')
    .toUpperCase();
}

/**
 * Parses and checks a GPT header sector. Returns null when the signature is absent (no GPT
 * here); throws `CorruptError` when a signed header is inconsistent or fails its CRC.
 */
export function parseGptHeader(sector: Uint8Array, offset: number): GptHeader | null {
  const structure = 'GPT header';
  if (sector.length < 92) {
    throw new CorruptError(`GPT header needs 92 bytes, have ${sector.length}`, {
      structure,
      offset,
      reason: 'truncated',
    });
  }
  if (new TextDecoder('latin1').decode(sector.subarray(0, 8)) !== GPT_SIGNATURE) return null;
  const view = new DataView(sector.buffer, sector.byteOffset, sector.length);
  const revision = view.getUint32(0x08, true);
  const headerSize = view.getUint32(0x0c, true);
  const headerCrc32 = view.getUint32(0x10, true);
  if (headerSize < 92 || headerSize > sector.length) {
    throw new CorruptError(`GPT header size ${headerSize} is outside 92..${sector.length}`, {
      structure,
      offset: offset + 0x0c,
      reason: 'header-size',
    });
  }
  // The CRC covers HeaderSize bytes with the CRC field itself taken as zero.
  const copy = sector.slice(0, headerSize);
  copy.fill(0, 0x10, 0x14);
  if (crc32(copy) !== headerCrc32) {
    throw new CorruptError('GPT header CRC32 mismatch', {
      structure,
      offset: offset + 0x10,
      reason: 'checksum',
    });
  }
  const entryCount = view.getUint32(0x50, true);
  const entrySize = view.getUint32(0x54, true);
  // The spec requires 128 × 2^n bytes per entry.
  if (entrySize < 128 || (entrySize & (entrySize - 1)) !== 0 || entrySize > 4096) {
    throw new CorruptError(`GPT entry size ${entrySize} is not 128 × 2^n`, {
      structure,
      offset: offset + 0x54,
      reason: 'entry-size',
    });
  }
  if (entryCount * entrySize > MAX_ENTRY_ARRAY_BYTES) {
    throw new CorruptError(`GPT entry array of ${entryCount} × ${entrySize} bytes is too large`, {
      structure,
      offset: offset + 0x50,
      reason: 'entry-count',
    });
  }
  return {
    revision,
    headerSize,
    myLba: view.getBigUint64(0x18, true),
    alternateLba: view.getBigUint64(0x20, true),
    firstUsableLba: view.getBigUint64(0x28, true),
    lastUsableLba: view.getBigUint64(0x30, true),
    diskGuid: formatGuid(sector.subarray(0x38, 0x48)),
    entriesLba: view.getBigUint64(0x48, true),
    entryCount,
    entrySize,
    entriesCrc32: view.getUint32(0x58, true),
  };
}

/** Parses the entry array (already read whole) and checks its CRC; unused entries are dropped. */
export function parseGptEntries(header: GptHeader, bytes: Uint8Array, offset: number): GptEntry[] {
  const structure = 'GPT partition entry array';
  if (bytes.length !== header.entryCount * header.entrySize) {
    throw new CorruptError('GPT entry array has the wrong length', {
      structure,
      offset,
      reason: 'truncated',
    });
  }
  if (crc32(bytes) !== header.entriesCrc32) {
    throw new CorruptError('GPT partition entry array CRC32 mismatch', {
      structure,
      offset,
      reason: 'checksum',
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const entries: GptEntry[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const at = i * header.entrySize;
    const type = bytes.subarray(at, at + 16);
    if (type.every((b) => b === 0)) continue; // unused entry
    const firstLba = view.getBigUint64(at + 0x20, true);
    const lastLba = view.getBigUint64(at + 0x28, true);
    if (lastLba < firstLba) {
      throw new CorruptError(
        `GPT entry ${i + 1} ends (LBA ${lastLba}) before it starts (LBA ${firstLba})`,
        {
          structure,
          offset: offset + at + 0x20,
          reason: 'entry-range',
        },
      );
    }
    const nameBytes = bytes.subarray(at + 0x38, at + 0x38 + 72);
    let name = new TextDecoder('utf-16le').decode(nameBytes);
    const nul = name.indexOf('\0');
    if (nul >= 0) name = name.slice(0, nul);
    entries.push({
      index: i + 1,
      typeGuid: formatGuid(type),
      uniqueGuid: formatGuid(bytes.subarray(at + 0x10, at + 0x20)),
      firstLba,
      lastLba,
      attributes: view.getBigUint64(at + 0x30, true),
      name,
    });
  }
  return entries;
}

const GPT_TYPE_NAMES: Record<string, string> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI system',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 'Linux root (x86-64)',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
  'DE94BBA4-06D1-4D40-A16A-BFD50179D6AC': 'Windows recovery',
};

export function gptTypeName(guid: string): string {
  return GPT_TYPE_NAMES[guid] ?? 'unknown';
}
