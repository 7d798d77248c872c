// Sources: UEFI Specification 2.10, §5.3 "GUID Partition Table (GPT) Disk Layout"
// (tables 5-5 GPT header, 5-6 GPT partition entry). Integers little-endian; GUIDs in the
// mixed-endian EFI_GUID layout (first three fields little-endian).
import { crc32, FieldReader } from '@diskube/core';
import type { PartitionReason } from './reasons.js';

export const GPT_SIGNATURE = 'EFI PART';
/** Entry arrays larger than this are refused: denied to prevent allocating too large buffers. */
export const MAX_ENTRY_ARRAY_BYTES = 4 << 20;
/** UEFI 2.10 §5.3.2: at least this much space is reserved for the entry array. */
export const MIN_ENTRY_ARRAY_BYTES = 16384;

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

/**
 * Parses and checks a GPT header sector. Returns null when the signature is absent (no GPT
 * here); throws `CorruptError` when a signed header is inconsistent or fails its CRC.
 */
export function parseGptHeader(sector: Uint8Array, offset: number): GptHeader | null {
  const f = new FieldReader<PartitionReason>(sector, 'GPT header', offset).need(92);
  if (f.ascii(0, 8) !== GPT_SIGNATURE) return null;
  const revision = f.u32le(0x08);
  const headerSize = f.u32le(0x0c);
  const headerCrc32 = f.u32le(0x10);
  if (headerSize < 92 || headerSize > sector.length) {
    throw f.corrupt(
      `GPT header size ${headerSize} is outside 92..${sector.length}`,
      0x0c,
      'header-size',
    );
  }
  // The CRC covers HeaderSize bytes with the CRC field itself taken as zero.
  const copy = sector.slice(0, headerSize);
  copy.fill(0, 0x10, 0x14);
  if (crc32(copy) !== headerCrc32) {
    throw f.corrupt('GPT header CRC32 mismatch', 0x10, 'checksum');
  }
  const entryCount = f.u32le(0x50);
  const entrySize = f.u32le(0x54);
  // The spec requires 128 × 2^n bytes per entry.
  if (entrySize < 128 || (entrySize & (entrySize - 1)) !== 0 || entrySize > 4096) {
    throw f.corrupt(`GPT entry size ${entrySize} is not 128 × 2^n`, 0x54, 'entry-size');
  }
  if (entryCount * entrySize > MAX_ENTRY_ARRAY_BYTES) {
    throw f.corrupt(
      `GPT entry array of ${entryCount} × ${entrySize} bytes is too large`,
      0x50,
      'too-large',
    );
  }
  return {
    revision,
    headerSize,
    myLba: f.u64leBig(0x18),
    alternateLba: f.u64leBig(0x20),
    firstUsableLba: f.u64leBig(0x28),
    lastUsableLba: f.u64leBig(0x30),
    diskGuid: f.guid(0x38).toUpperCase(),
    entriesLba: f.u64leBig(0x48),
    entryCount,
    entrySize,
    entriesCrc32: f.u32le(0x58),
  };
}

/** Parses the entry array (already read whole) and checks its CRC; unused entries are dropped. */
export function parseGptEntries(header: GptHeader, bytes: Uint8Array, offset: number): GptEntry[] {
  const f = new FieldReader<PartitionReason>(bytes, 'GPT partition entry array', offset);
  if (bytes.length !== header.entryCount * header.entrySize) {
    throw f.corrupt('GPT entry array has the wrong length', 0, 'truncated');
  }
  if (crc32(bytes) !== header.entriesCrc32) {
    throw f.corrupt('GPT partition entry array CRC32 mismatch', 0, 'checksum');
  }
  const entries: GptEntry[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const at = i * header.entrySize;
    const type = f.slice(at, 16);
    if (type.every((b) => b === 0)) continue; // unused entry
    const firstLba = f.u64leBig(at + 0x20);
    const lastLba = f.u64leBig(at + 0x28);
    if (lastLba < firstLba) {
      throw f.corrupt(
        `GPT entry ${i + 1} ends (LBA ${lastLba}) before it starts (LBA ${firstLba})`,
        at + 0x20,
        'entry-range',
      );
    }
    let name = f.utf16le(at + 0x38, 36);
    const nul = name.indexOf('\0');
    if (nul >= 0) name = name.slice(0, nul);
    entries.push({
      index: i + 1,
      typeGuid: f.guid(at).toUpperCase(),
      uniqueGuid: f.guid(at + 0x10).toUpperCase(),
      firstLba,
      lastLba,
      attributes: f.u64leBig(at + 0x30),
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
