import { type BlockSource, CorruptError, DiskubeError, readBytes } from '@diskube/core';
import {
  type GptEntry,
  type GptHeader,
  gptTypeName,
  parseGptEntries,
  parseGptHeader,
} from './gpt.js';
import {
  EXTENDED_TYPES,
  GPT_PROTECTIVE_TYPE,
  type MbrEntry,
  mbrTypeName,
  parseMbrSector,
} from './mbr.js';
import type { Partition, PartitionTable } from './partition.js';

/** Logical partitions followed before the EBR chain is declared corrupt: bounds hostile chains. */
export const MAX_LOGICAL_PARTITIONS = 256;
const SECTOR = 512;

/**
 * Reads the partition table at the start of a disk. Resolves null when there is none (no 0x55AA
 * signature, or entries that cannot be a partition table — e.g. a FAT boot sector). A GPT disk's
 * primary header is preferred; when it or its entry array fails its CRC the backup at the end of
 * the disk is used and a warning says so.
 */
export async function readPartitionTable(source: BlockSource): Promise<PartitionTable | null> {
  if (source.size < SECTOR) return null;
  const entries = parseMbrSector(await readBytes(source, 0, SECTOR), 0);
  if (!entries) return null;
  if (entries.some((e) => e.type === GPT_PROTECTIVE_TYPE)) return readGpt(source);
  return readMbr(source, entries);
}

function sectorsToBytes(lba: number, sectors: number): [number, number] {
  return [lba * SECTOR, sectors * SECTOR];
}

async function readMbr(source: BlockSource, entries: MbrEntry[]): Promise<PartitionTable | null> {
  const table: PartitionTable = {
    scheme: 'mbr',
    sectorSize: SECTOR,
    partitions: [],
    metadata: [[0, SECTOR]],
    warnings: [],
  };
  const fits = (offset: number, size: number) => offset >= SECTOR && offset + size <= source.size;
  for (const [i, entry] of entries.entries()) {
    if (entry.type === 0 || entry.sectorCount === 0) continue;
    const [offset, size] = sectorsToBytes(entry.lbaStart, entry.sectorCount);
    // Entries that leave the disk mean this sector is not an MBR (or the image is cut short);
    // either way the caller keeps the whole disk, which is safe.
    if (!fits(offset, size)) return null;
    if (EXTENDED_TYPES.has(entry.type)) {
      await readLogicalPartitions(source, entry, table);
      continue;
    }
    table.partitions.push({
      number: i + 1,
      offset,
      size,
      type: hex2(entry.type),
      typeName: mbrTypeName(entry.type),
      name: 'primary',
    });
  }
  warnOverlaps(table);
  return table;
}

/**
 * Follows the chain of extended boot records. Each EBR's first entry is a logical partition
 * relative to that EBR; its second entry points to the next EBR relative to the start of the
 * extended partition. The chain is bounded and loops are detected.
 */
async function readLogicalPartitions(
  source: BlockSource,
  extended: MbrEntry,
  table: PartitionTable,
): Promise<void> {
  const extStart = extended.lbaStart;
  const extEnd = extended.lbaStart + extended.sectorCount;
  const seen = new Set<number>();
  let ebrLba = extStart;
  for (let number = 5; ; number++) {
    const structure = 'extended boot record';
    const offset = ebrLba * SECTOR;
    if (seen.has(ebrLba)) {
      throw new CorruptError('EBR chain loops', { structure, offset, reason: 'ebr-loop' });
    }
    if (seen.size >= MAX_LOGICAL_PARTITIONS) {
      throw new CorruptError(`more than ${MAX_LOGICAL_PARTITIONS} logical partitions`, {
        structure,
        offset,
        reason: 'ebr-chain-too-long',
      });
    }
    seen.add(ebrLba);
    const entries = parseMbrSector(await readBytes(source, offset, SECTOR), offset);
    if (!entries) {
      throw new CorruptError('EBR has no 0x55AA signature or invalid entries', {
        structure,
        offset,
        reason: 'bad-signature',
      });
    }
    table.metadata.push([offset, SECTOR]);
    const [logical, next] = entries as [MbrEntry, MbrEntry];
    if (logical.type !== 0 && logical.sectorCount > 0) {
      const start = ebrLba + logical.lbaStart;
      if (start + logical.sectorCount > extEnd || logical.lbaStart === 0) {
        throw new CorruptError(`logical partition ${number} leaves its extended partition`, {
          structure,
          offset: offset + 0x1be,
          reason: 'logical-out-of-range',
        });
      }
      const [pOffset, size] = sectorsToBytes(start, logical.sectorCount);
      table.partitions.push({
        number,
        offset: pOffset,
        size,
        type: hex2(logical.type),
        typeName: mbrTypeName(logical.type),
        name: 'logical',
      });
    }
    if (next.type === 0 || next.sectorCount === 0) return;
    ebrLba = extStart + next.lbaStart;
    if (ebrLba >= extEnd || ebrLba <= extStart) {
      throw new CorruptError('next EBR lies outside the extended partition', {
        structure,
        offset: offset + 0x1ce,
        reason: 'ebr-out-of-range',
      });
    }
  }
}

async function readGptAt(
  source: BlockSource,
  sectorSize: number,
  headerLba: number,
): Promise<{ header: GptHeader; entries: GptEntry[]; metadata: Array<[number, number]> } | null> {
  const headerOffset = headerLba * sectorSize;
  if (headerLba < 1 || headerOffset + sectorSize > source.size) return null;
  const header = parseGptHeader(await readBytes(source, headerOffset, sectorSize), headerOffset);
  if (!header) return null;
  const entriesOffset = Number(header.entriesLba) * sectorSize;
  const entriesLength = header.entryCount * header.entrySize;
  if (entriesOffset < sectorSize || entriesOffset + entriesLength > source.size) {
    throw new CorruptError('GPT entry array lies outside the disk', {
      structure: 'GPT header',
      offset: headerOffset + 0x48,
      reason: 'entries-out-of-range',
    });
  }
  const entries = parseGptEntries(
    header,
    await readBytes(source, entriesOffset, entriesLength),
    entriesOffset,
  );
  return {
    header,
    entries,
    metadata: [
      [headerOffset, sectorSize],
      [entriesOffset, entriesLength],
    ],
  };
}

async function readGpt(source: BlockSource): Promise<PartitionTable> {
  // The header sits in LBA 1; its sector size is the disk's: 512, or 4096 on 4Kn disks.
  let lastError: unknown;
  for (const sectorSize of [512, 4096]) {
    let primary: Awaited<ReturnType<typeof readGptAt>> = null;
    try {
      primary = await readGptAt(source, sectorSize, 1);
    } catch (error) {
      if (!DiskubeError.isInstance(error)) throw error;
      lastError = error;
    }
    const lastLba = Math.floor(source.size / sectorSize) - 1;
    let backup: Awaited<ReturnType<typeof readGptAt>> = null;
    try {
      backup = await readGptAt(source, sectorSize, lastLba);
    } catch (error) {
      if (!DiskubeError.isInstance(error)) throw error;
      lastError ??= error;
    }
    const chosen = primary ?? backup;
    if (!chosen) continue;
    const table: PartitionTable = {
      scheme: 'gpt',
      sectorSize,
      partitions: [],
      metadata: [
        [0, sectorSize],
        ...chosen.metadata,
        ...(primary && backup ? backup.metadata : []),
      ],
      warnings: [],
    };
    if (!primary) {
      table.warnings.push({
        code: 'gpt-primary-damaged',
        message: `primary GPT header unusable (${lastError instanceof Error ? lastError.message : 'missing'}); using the backup at LBA ${lastLba}`,
        offset: sectorSize,
      });
    } else if (!backup) {
      table.warnings.push({
        code: 'gpt-backup-missing',
        message: `backup GPT header at LBA ${lastLba} is missing or damaged`,
        offset: lastLba * sectorSize,
      });
    }
    for (const entry of chosen.entries) {
      const offset = Number(entry.firstLba) * sectorSize;
      const size = (Number(entry.lastLba - entry.firstLba) + 1) * sectorSize;
      if (offset + size > source.size || offset < sectorSize * 2) {
        throw new CorruptError(`GPT partition ${entry.index} lies outside the disk`, {
          structure: 'GPT partition entry array',
          offset:
            Number(chosen.header.entriesLba) * sectorSize +
            (entry.index - 1) * chosen.header.entrySize,
          reason: 'entry-out-of-range',
        });
      }
      table.partitions.push({
        number: entry.index,
        offset,
        size,
        type: entry.typeGuid,
        typeName: gptTypeName(entry.typeGuid),
        name: entry.name,
      });
    }
    warnOverlaps(table);
    return table;
  }
  if (lastError) throw lastError;
  throw new CorruptError('protective MBR but no GPT header at LBA 1 or at the end of the disk', {
    structure: 'GPT header',
    offset: 512,
    reason: 'missing',
  });
}

function warnOverlaps(table: PartitionTable): void {
  const sorted = [...table.partitions].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.size) {
      table.warnings.push({
        code: 'partition-overlap',
        message: `partitions ${prev.number} and ${cur.number} overlap; both are kept`,
        offset: cur.offset,
      });
    }
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export type { Partition };
