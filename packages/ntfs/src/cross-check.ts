import { Bitmap } from '@diskube/bitmap';
import {
  CorruptError,
  type CrossCheckReport,
  DiskubeError,
  FieldReader,
  type Warning,
} from '@diskube/core';
import {
  AT_ATTRIBUTE_LIST,
  AT_BITMAP,
  AT_DATA,
  AT_FILE_NAME,
  type Attribute,
  parseAttributes,
} from './attribute.js';
import { parseAttributeList } from './attribute-list.js';
import { type MftRecordHeader, parseMftRecord } from './mft-record.js';
import type { NtfsReason } from './reasons.js';
import { decodeRunlist, findRun, SPARSE } from './runlist.js';
import { FILE_MFT, type NtfsVolume } from './volume.js';

/** $MFT is read this many bytes at a time (1,024 records of 1 KiB), so memory stays flat. */
const MFT_CHUNK = 1 << 20;

/** Missing runs listed in the report and as warnings; the counts cover the rest. */
const MAX_REPORTED = 20;

/** $FILE_NAME namespace 2: the DOS 8.3 alias, used only when a file has no other name. */
const FILE_NAME_DOS = 2;

/**
 * The name of a file from the $FILE_NAME attributes of its base record (Win32 or POSIX name
 * preferred over the DOS alias), or '' when it has none.
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (FILE_NAME_ATTR): 0x40 file_name_length (1),
 * 0x41 file_name_type (1), 0x42 file_name (UTF-16LE).
 */
function fileNameOf(attributes: Attribute[]): string {
  let name = '';
  for (const a of attributes) {
    if (a.type !== AT_FILE_NAME || !a.resident || a.value.length < 0x42) continue;
    const f = new FieldReader<NtfsReason>(a.value, '$FILE_NAME', a.offset);
    const length = f.u8(0x40);
    if (0x42 + length * 2 > a.value.length) continue;
    const text = f.utf16le(0x42, length);
    if (f.u8(0x41) !== FILE_NAME_DOS) return text;
    name ||= text;
  }
  return name;
}

function isCorrupt(error: unknown): error is DiskubeError {
  return DiskubeError.isInstance(error) && error.code === 'CORRUPT';
}

/** What the walk found: the report for the result, and its `referenced-free` warnings. */
export interface CrossCheckWalk {
  report: CrossCheckReport;
  warnings: Warning[];
}

/**
 * The `crossCheck` walk, as ntfsresize's "Checking filesystem consistency" (build_lcn_usage_bitmap)
 * does it: read every record of $MFT (bounded by its data_size, in 1 MiB chunks, fixups applied),
 * decode the runlist of every non-resident attribute extent of every in-use record, and prove
 * each referenced cluster is set in `used`. A cluster `used` calls free is set, counted and
 * named by its record.
 *
 * Extension records are in-use records too, so every extent is decoded once, in the record that
 * holds it; attribute lists are followed as well, so an extension record an attribute list names
 * is walked even if its own in-use flag is clear. Sparse runs reference no clusters.
 *
 * A record $MFT's $BITMAP calls in use that cannot be read (bad signature, torn write, broken
 * attributes, a run outside the volume) is CORRUPT: what it references cannot be proven. A free
 * record is skipped whatever its bytes.
 *
 * Sources: ntfs-3g ntfsprogs/ntfsresize.c (build_allocation_bitmap, walk_attributes,
 * build_lcn_usage_bitmap, compare_bitmaps).
 */
export async function crossCheckWalk(
  vol: NtfsVolume,
  used: Bitmap,
  signal?: AbortSignal,
): Promise<CrossCheckWalk> {
  const { clusterCount, mftRecordSize: recordSize } = vol.boot;
  const records = vol.mftRecordCount;
  const mft = await vol.openFile(FILE_MFT);
  const data = vol.stream(mft, AT_DATA);
  const bitmapStream = vol.stream(mft, AT_BITMAP);
  if (!data || data.resident || !bitmapStream) {
    throw new CorruptError('$MFT has no non-resident $DATA or no $BITMAP', {
      structure: '$MFT',
      offset: mft.attributes[0]?.offset,
      reason: 'bad-mft',
    });
  }
  // $MFT's $BITMAP: one bit per record, set when the record is in use. Bits past its data size
  // read as clear (the records are then judged by their own in-use flag).
  const inUseBits = new Uint8Array(Math.ceil(records / 8));
  await vol.readStream(
    bitmapStream,
    0,
    inUseBits.subarray(0, Math.min(inUseBits.length, bitmapStream.dataSize)),
    '$MFT $BITMAP',
  );
  const marked = (n: number) => ((inUseBits[n >> 3] ?? 0) & (1 << (n & 7))) !== 0;

  const report: CrossCheckReport = {
    referencedBlocks: 0,
    objects: 0,
    missingBlocks: 0,
    missing: [],
  };
  // On a sound volume no cluster is referenced twice, so the references add up to at most the
  // cluster count. Twice that bounds the work (each run costs its length / 32 word operations)
  // on records whose runs overlap without end.
  const limit = 2 * clusterCount;
  // One bit per record each (like $MFT's $BITMAP), so memory stays bounded by $MFT's size:
  // records walked, and extension records an attribute list names ahead of the walk.
  const walked = new Bitmap(records);
  const listed = new Bitmap(records);

  /**
   * `record N name` for the file a record belongs to. $FILE_NAME may sit in an extension record
   * (ntfs-3g moves it out when the base record fills), so the whole file is opened; this costs a
   * few reads and happens only for the first few misses.
   */
  const ownerOf = async (header: MftRecordHeader): Promise<string> => {
    const base = header.baseRecord === 0 ? header.recordNumber : header.baseRecord;
    const file = await vol.openFile(base).catch(() => undefined);
    const name = file ? fileNameOf(file.attributes) : '';
    const extension =
      base === header.recordNumber ? '' : ` (extension record ${header.recordNumber})`;
    return `record ${base}${name ? ` ${name}` : ''}${extension}`;
  };

  const walkRecord = async (header: MftRecordHeader, attributes: Attribute[]): Promise<void> => {
    report.objects++;
    walked.set(header.recordNumber);
    for (const a of attributes) {
      if (a.resident) continue;
      const runs = decodeRunlist(
        a.mappingPairs,
        a.lowestVcn,
        a.highestVcn,
        clusterCount,
        `attribute 0x${a.type.toString(16)} of MFT record ${header.recordNumber}`,
        a.mappingPairsOffset,
      );
      for (const r of runs) {
        if (r.lcn === SPARSE) continue;
        report.referencedBlocks += r.length;
        if (report.referencedBlocks > limit) {
          throw new CorruptError(
            `MFT records reference more than ${limit} clusters, twice the volume's ${clusterCount}: clusters are cross-linked`,
            {
              structure: `MFT record ${header.recordNumber}`,
              offset: a.mappingPairsOffset,
              reason: 'cross-linked',
            },
          );
        }
        const free = r.length - used.countRange(r.lcn, r.length);
        if (free === 0) continue;
        report.missingBlocks += free;
        // The free pieces of this run, each reported (bounded) before the run is set.
        for (let at = used.nextClear(r.lcn); at >= 0 && at < r.lcn + r.length; ) {
          const next = used.nextSet(at);
          const end = next < 0 ? r.lcn + r.length : Math.min(next, r.lcn + r.length);
          if (report.missing.length < MAX_REPORTED) {
            report.missing.push({
              owner: await ownerOf(header),
              block: at,
              count: end - at,
            });
          }
          at = end < r.lcn + r.length ? used.nextClear(end) : -1;
        }
        used.setRange(r.lcn, r.length);
      }
    }
    if (header.baseRecord === 0) {
      const list = attributes.find((a) => a.type === AT_ATTRIBUTE_LIST);
      if (list) {
        const value = await vol.readAttributeList(list, header.recordNumber);
        for (const e of parseAttributeList(value, list.offset, header.recordNumber)) {
          if (e.record === header.recordNumber) continue;
          if (e.record >= records) {
            throw new CorruptError(
              `attribute list names record ${e.record}, beyond the ${records} records of $MFT`,
              { structure: `MFT record ${header.recordNumber}`, reason: 'record-out-of-range' },
            );
          }
          if (e.record > header.recordNumber) listed.set(e.record);
          else if (!walked.get(e.record)) await walkListedEarlier(e.record, header.recordNumber);
        }
      }
    }
  };

  /** Parse record `n` from its fixed-up bytes, or undefined when it is free and unreadable. */
  const parse = (bytes: Uint8Array, n: number, at: number) => {
    try {
      const header = parseMftRecord(bytes, n, at);
      return { header, attributes: parseAttributes(bytes, header, at) };
    } catch (error) {
      if (isCorrupt(error) && !marked(n)) return undefined;
      throw error;
    }
  };

  /** An extension record listed by a base record after the walk passed it: walk it if it was free. */
  const walkListedEarlier = async (n: number, base: number): Promise<void> => {
    const record = await vol.readRecord(n).catch((error: unknown) => {
      if (isCorrupt(error)) return undefined;
      throw error;
    });
    if (record && !record.header.inUse && record.header.baseRecord === base) {
      await walkRecord(record.header, record.attributes);
    }
  };

  const perChunk = Math.max(1, Math.floor(MFT_CHUNK / recordSize));
  const chunk = new Uint8Array(perChunk * recordSize);
  const dataOffset = (n: number) => {
    // The source offset of record n, for messages only (the chunk is read through the runlist).
    const cluster = Math.floor((n * recordSize) / vol.boot.clusterSize);
    const run = findRun(data.runs, cluster);
    return run ? run.lcn * vol.boot.clusterSize + ((n * recordSize) % vol.boot.clusterSize) : 0;
  };
  for (let first = 0; first < records; first += perChunk) {
    signal?.throwIfAborted();
    const count = Math.min(perChunk, records - first);
    const bytes = chunk.subarray(0, count * recordSize);
    await vol.readStream(data, first * recordSize, bytes, '$MFT');
    for (let i = 0; i < count; i++) {
      const n = first + i;
      const recordBytes = bytes.subarray(i * recordSize, (i + 1) * recordSize);
      // Records never written read as zeros; skipping them saves a parse per free record.
      if (!marked(n) && recordBytes[0] !== 0x46 && recordBytes[0] !== 0x42) continue;
      const record = parse(recordBytes, n, dataOffset(n));
      if (!record) continue;
      const { header } = record;
      // A listed extension record is walked even with its in-use flag clear; which base listed
      // it is not kept (a bit per record), so any base will do: walking more keeps more.
      if (header.inUse || (listed.get(n) && header.baseRecord !== 0)) {
        await walkRecord(header, record.attributes);
      }
    }
  }

  const warnings: Warning[] = report.missing.map((m) => ({
    code: 'referenced-free',
    message: `${m.owner} references ${m.count} clusters at LCN ${m.block} that $Bitmap marks free; they are kept`,
    offset: m.block * vol.boot.clusterSize,
  }));
  const listedBlocks = report.missing.reduce((n, m) => n + m.count, 0);
  if (report.missingBlocks > listedBlocks) {
    warnings.push({
      code: 'referenced-free',
      message: `${report.missingBlocks - listedBlocks} more referenced clusters were free in $Bitmap; they are kept`,
    });
  }
  return { report, warnings };
}
