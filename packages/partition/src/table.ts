// Sources: Linux block/partitions/msdos.c (msdos_partition, parse_extended) for how MBRs and
// EBR chains are read; UEFI Specification 2.10 §5.3 for GPT. See FORMAT.md for the rules.
import { type BlockSource, CorruptError, DiskubeError, readBytes } from '@diskube/core';
import {
  type GptEntry,
  type GptHeader,
  gptTypeName,
  MIN_ENTRY_ARRAY_BYTES,
  parseGptEntries,
  parseGptHeader,
} from './gpt.js';
import {
  EXTENDED_TYPES,
  GPT_PROTECTIVE_TYPE,
  looksLikeBootSector,
  MBR_ENTRY_OFFSET,
  type MbrEntry,
  mbrTypeName,
  parseMbrSector,
} from './mbr.js';
import type { Partition, PartitionTable } from './partition.js';

/** Logical partitions followed before the EBR chain is declared corrupt: bounds hostile chains. */
export const MAX_LOGICAL_PARTITIONS = 256;
const SECTOR = 512;

/**
 * Reads the partition table at the start of a disk. Resolves null when there is none: no 0x55AA
 * signature, entries that cannot be a partition table (a status byte other than 0x00/0x80, an
 * entry covering the MBR itself), or the boot sector of a bare FAT/NTFS/exFAT volume whose four
 * entries hold no partition. A GPT disk's primary header is preferred; when it or its entry
 * array fails its CRC the backup at the end of the disk is used and a warning says so. A
 * partition that runs past the end of the image is `CORRUPT`/`partition-truncated`.
 */
export async function readPartitionTable(source: BlockSource): Promise<PartitionTable | null> {
  if (source.size < SECTOR) return null;
  const sector = await readBytes(source, 0, SECTOR);
  const entries = parseMbrSector(sector, 0);
  if (!entries) return null;
  if (entries.some((e) => e.type === GPT_PROTECTIVE_TYPE)) return readGpt(source);
  // A bare FAT or NTFS volume ends its boot sector in 0x55AA too, and mkfs.fat and mkntfs leave
  // the bytes at 0x1BE zero, so its "entries" parse as four empty ones. Such a sector is a
  // table only when an entry describes a partition that starts on the disk.
  if (looksLikeBootSector(sector)) {
    const starts = (e: MbrEntry) => e.lbaStart >= 1 && e.lbaStart * SECTOR < source.size;
    if (!entries.some((e) => !isEmpty(e) && starts(e))) return null;
  }
  return readMbr(source, entries);
}

/** An unused MBR/EBR slot: type 0 or no sectors (the kernel looks at the count only; a type-0
 * slot with sectors is then space outside every partition here, kept whole). */
function isEmpty(entry: MbrEntry): boolean {
  return entry.type === 0 || entry.sectorCount === 0;
}

function sectorsToBytes(lba: number, sectors: number): [number, number] {
  return [lba * SECTOR, sectors * SECTOR];
}

/**
 * `CORRUPT`/`partition-truncated` when `[offset, offset + size)` runs past the end of the image:
 * the image was cut short inside a partition (a copy that stopped early, a sparse file never
 * grown), and what is missing cannot be backed up.
 */
function checkNotTruncated(
  source: BlockSource,
  what: string,
  offset: number,
  size: number,
  at: { structure: string; offset: number },
): void {
  const end = offset + size;
  if (end <= source.size) return;
  const missing = Math.min(size, end - source.size);
  throw new CorruptError(
    `${what} (bytes ${offset}..${end}) runs ${missing} bytes past the end of the image (${source.size} bytes): the image is truncated`,
    { ...at, reason: 'partition-truncated' },
  );
}

async function readMbr(source: BlockSource, entries: MbrEntry[]): Promise<PartitionTable | null> {
  const table: PartitionTable = {
    scheme: 'mbr',
    sectorSize: SECTOR,
    partitions: [],
    metadata: [[0, SECTOR]],
    warnings: [],
  };
  // An entry that covers the MBR itself is not something a partitioner writes: no table.
  if (entries.some((e) => !isEmpty(e) && e.lbaStart === 0)) return null;
  for (const [i, entry] of entries.entries()) {
    if (isEmpty(entry)) continue;
    const [offset, size] = sectorsToBytes(entry.lbaStart, entry.sectorCount);
    const at = { structure: 'MBR', offset: MBR_ENTRY_OFFSET + 16 * i };
    if (EXTENDED_TYPES.has(entry.type)) {
      await readLogicalPartitions(source, entry, table);
      checkNotTruncated(source, `extended partition ${i + 1}`, offset, size, at);
      continue;
    }
    checkNotTruncated(source, `partition ${i + 1}`, offset, size, at);
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
 * Follows the chain of extended boot records, as Linux's `parse_extended` (block/partitions/
 * msdos.c) does. Every non-empty slot of an EBR that is not of an extended type is a logical
 * partition, its start relative to that EBR: usually only slot 1 is, but some partitioners (and
 * OS/2) use more. The first slot of an extended type (05/0F/85) links to the next EBR, relative
 * to the start of the extended partition; a second one is ignored with `ebr-entry-ignored`.
 * Slots 3 and 4 sometimes hold garbage: one that leaves the extended partition is ignored with
 * `ebr-entry-ignored` (its sectors stay outside every partition, so they are kept); in slots 1
 * and 2 that is `logical-out-of-range`. The chain is bounded and loops are detected.
 */
async function readLogicalPartitions(
  source: BlockSource,
  extended: MbrEntry,
  table: PartitionTable,
): Promise<void> {
  const structure = 'extended boot record';
  const extStart = extended.lbaStart;
  const extEnd = extended.lbaStart + extended.sectorCount;
  const seen = new Set<number>();
  let number = 5 + table.partitions.filter((p) => p.name === 'logical').length;
  let ebrLba = extStart;
  for (;;) {
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
    checkNotTruncated(source, `the EBR of logical partition ${number}`, offset, SECTOR, {
      structure,
      offset,
    });
    const entries = parseMbrSector(await readBytes(source, offset, SECTOR), offset);
    if (!entries) {
      throw new CorruptError('EBR has no 0x55AA signature or invalid entries', {
        structure,
        offset,
        reason: 'bad-signature',
      });
    }
    table.metadata.push([offset, SECTOR]);
    let link: MbrEntry | null = null;
    let linkSlot = -1;
    for (const [slot, entry] of entries.entries()) {
      const entryOffset = offset + MBR_ENTRY_OFFSET + 16 * slot;
      if (entry.sectorCount === 0) continue;
      if (EXTENDED_TYPES.has(entry.type)) {
        if (!link) {
          link = entry;
          linkSlot = slot;
        } else {
          table.warnings.push({
            code: 'ebr-entry-ignored',
            message: `EBR slot ${slot + 1} is a second link (slot ${linkSlot + 1} is followed); ignored`,
            offset: entryOffset,
          });
        }
        continue;
      }
      if (entry.type === 0) continue;
      const start = ebrLba + entry.lbaStart;
      if (entry.lbaStart === 0 || start + entry.sectorCount > extEnd) {
        if (slot >= 2) {
          table.warnings.push({
            code: 'ebr-entry-ignored',
            message: `EBR slot ${slot + 1} leaves its extended partition; ignored as garbage, as Linux does`,
            offset: entryOffset,
          });
          continue;
        }
        throw new CorruptError(`logical partition ${number} leaves its extended partition`, {
          structure,
          offset: entryOffset,
          reason: 'logical-out-of-range',
        });
      }
      const [pOffset, size] = sectorsToBytes(start, entry.sectorCount);
      checkNotTruncated(source, `logical partition ${number}`, pOffset, size, {
        structure,
        offset: entryOffset,
      });
      table.partitions.push({
        number: number++,
        offset: pOffset,
        size,
        type: hex2(entry.type),
        typeName: mbrTypeName(entry.type),
        name: 'logical',
      });
    }
    if (!link) return;
    ebrLba = extStart + link.lbaStart;
    if (ebrLba >= extEnd || ebrLba <= extStart) {
      throw new CorruptError('next EBR lies outside the extended partition', {
        structure,
        offset: offset + MBR_ENTRY_OFFSET + 16 * linkSlot,
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
        // A damaged primary is still the table's: its header and the 16 KiB the spec reserves
        // for its entry array at LBA 2 are kept, even when an entry claims them.
        ...(primary ? [] : [[sectorSize, sectorSize + MIN_ENTRY_ARRAY_BYTES] as [number, number]]),
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
    const { header } = chosen;
    for (const entry of chosen.entries) {
      const offset = Number(entry.firstLba) * sectorSize;
      const size = (Number(entry.lastLba - entry.firstLba) + 1) * sectorSize;
      const at = {
        structure: 'GPT partition entry array',
        offset: Number(header.entriesLba) * sectorSize + (entry.index - 1) * header.entrySize,
      };
      // Inside the header's usable LBAs but past the end of the image: the image was cut short
      // (its backup header is then missing too). Outside them, the entry itself is wrong.
      const usable =
        entry.firstLba >= header.firstUsableLba && entry.lastLba <= header.lastUsableLba;
      if (usable && offset >= sectorSize * 2) {
        checkNotTruncated(source, `partition ${entry.index}`, offset, size, at);
      }
      if (offset + size > source.size || offset < sectorSize * 2) {
        throw new CorruptError(`GPT partition ${entry.index} lies outside the disk`, {
          ...at,
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

/** Two byte ranges of a table that share bytes: a partition and another partition or the table. */
export interface Overlap {
  partition: Partition;
  /** The other partition, or null for the table itself (MBR, an EBR, a GPT header or array). */
  other: Partition | null;
  /** First byte both cover. */
  offset: number;
}

/**
 * Every partition that shares a byte with another partition or with the table's own sectors,
 * with one thing it overlaps. A sweep over the ranges sorted by start: a range that starts
 * before the furthest end seen so far overlaps the range that reached that end (O(n log n), as a
 * GPT may list 32768 entries).
 */
export function findOverlaps(table: PartitionTable): Overlap[] {
  type Range = { offset: number; end: number; partition: Partition | null };
  const ranges: Range[] = [
    ...table.partitions.map((p) => ({ offset: p.offset, end: p.offset + p.size, partition: p })),
    ...table.metadata.map(([offset, length]) => ({
      offset,
      end: offset + length,
      partition: null,
    })),
  ].sort((a, b) => a.offset - b.offset || b.end - a.end);
  const found = new Map<Partition, Overlap>();
  const note = (partition: Partition | null, other: Partition | null, offset: number) => {
    if (partition && !found.has(partition)) found.set(partition, { partition, other, offset });
  };
  let reach: Range | null = null;
  for (const range of ranges) {
    if (reach && range.offset < reach.end && (range.partition || reach.partition)) {
      note(range.partition, reach.partition, range.offset);
      note(reach.partition, range.partition, range.offset);
    }
    if (!reach || range.end > reach.end) reach = range;
  }
  return [...found.values()].sort((a, b) => a.partition.offset - b.partition.offset);
}

function warnOverlaps(table: PartitionTable): void {
  for (const { partition, other, offset } of findOverlaps(table)) {
    table.warnings.push({
      code: 'partition-overlap',
      message: `partition ${partition.number} overlaps ${other ? `partition ${other.number}` : 'the partition table'}`,
      offset,
    });
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export type { Partition };
