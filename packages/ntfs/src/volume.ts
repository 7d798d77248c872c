import {
  type BlockSource,
  CorruptError,
  DiskubeError,
  IoError,
  UnsupportedError,
} from '@diskube/core';
import {
  AT_ATTRIBUTE_LIST,
  AT_DATA,
  ATTR_COMPRESSION_MASK,
  ATTR_IS_ENCRYPTED,
  ATTR_IS_SPARSE,
  type Attribute,
  type NonResidentAttribute,
  parseAttributes,
} from './attribute.js';
import { MAX_ATTRIBUTE_LIST_SIZE, parseAttributeList } from './attribute-list.js';
import { BOOT_SECTOR_SIZE, type BootSector, parseBootSector } from './boot-sector.js';
import { type MftRecordHeader, parseMftRecord } from './mft-record.js';
import type { NtfsReason } from './reasons.js';
import { decodeRunlist, findRun, type Run, SPARSE } from './runlist.js';

/** System file record numbers (ntfs-3g layout.h NTFS_SYSTEM_FILES). */
export const FILE_MFT = 0;
export const FILE_LOGFILE = 2;
export const FILE_VOLUME = 3;
export const FILE_ROOT = 5;
export const FILE_BITMAP = 6;
export const FILE_BADCLUS = 8;

/**
 * Extension records we follow for one file. A base record of 1 KiB lists at most ~30 attributes
 * inline; real files with huge runlists reach a few hundred extension records. 65,536 bounds the
 * work on hostile attribute lists while staying far above that.
 */
const MAX_EXTENSION_RECORDS = 65536;

/** Largest cluster count we map (the result bitmap's limit). */
const MAX_CLUSTERS = 2 ** 37;

/** One MFT record after fixups, with its parsed attribute records. */
export interface MftRecord {
  header: MftRecordHeader;
  attributes: Attribute[];
}

/** A file's attributes gathered from its base record and every extension record. */
export interface NtfsFile {
  record: number;
  header: MftRecordHeader;
  attributes: Attribute[];
  /** Extension records read through $ATTRIBUTE_LIST (empty without one). */
  extensionRecords: number[];
}

/** The byte stream of one attribute: resident bytes, or a runlist with its sizes. */
export type AttributeStream =
  | {
      resident: true;
      name: string;
      value: Uint8Array;
      dataSize: number;
      flags: number;
      offset: number;
    }
  | {
      resident: false;
      name: string;
      runs: Run[];
      dataSize: number;
      initializedSize: number;
      allocatedSize: number;
      flags: number;
      offset: number;
    };

function isUnsupportedEncoding(flags: number): 'compressed' | 'encrypted' | undefined {
  if (flags & ATTR_COMPRESSION_MASK) return 'compressed';
  if (flags & ATTR_IS_ENCRYPTED) return 'encrypted';
  return undefined;
}

/** The reason for refusing a stream we cannot read, by its encoding. */
const STREAM_REASONS = {
  compressed: 'compressed',
  encrypted: 'encrypted',
} as const satisfies Record<string, NtfsReason>;

/** The reason for refusing $MFT stored in a layout this library does not read. */
const SYSTEM_FILE_REASONS = {
  compressed: 'compressed-system-file',
  encrypted: 'encrypted-system-file',
  sparse: 'sparse-system-file',
} as const satisfies Record<string, NtfsReason>;

/**
 * Join the extents of one non-resident attribute (sorted by lowest VCN, each continuing the
 * previous one) into a single runlist.
 */
export function joinExtents(
  extents: NonResidentAttribute[],
  clusterCount: number,
  structure: string,
): Run[] {
  const sorted = [...extents].sort((a, b) => a.lowestVcn - b.lowestVcn);
  const runs: Run[] = [];
  let next = 0;
  for (const e of sorted) {
    if (e.lowestVcn !== next) {
      throw new CorruptError(`attribute extent starts at VCN ${e.lowestVcn}, expected ${next}`, {
        structure,
        offset: e.offset,
        reason: 'bad-vcn',
      });
    }
    for (const r of decodeRunlist(
      e.mappingPairs,
      e.lowestVcn,
      e.highestVcn,
      clusterCount,
      structure,
      e.mappingPairsOffset,
    )) {
      runs.push(r);
    }
    next = e.highestVcn + 1;
  }
  return runs;
}

/** An NTFS volume opened far enough to read MFT records and attribute streams. */
export class NtfsVolume {
  readonly source: BlockSource;
  readonly boot: BootSector;
  /** $MFT's $DATA runlist, complete once `open` returns. */
  mftRuns: Run[] = [];
  /** Records in $MFT (`data_size / record size`). */
  mftRecordCount = 0;
  /** Extension records holding parts of $MFT's own runlist (a fragmented $MFT). */
  mftExtensionRecords: number[] = [];

  private constructor(source: BlockSource, boot: BootSector) {
    this.source = source;
    this.boot = boot;
  }

  /** Read and check the boot sector, and that the source holds the whole cluster area. */
  static async readBoot(source: BlockSource): Promise<BootSector> {
    if (source.size < BOOT_SECTOR_SIZE) {
      throw new CorruptError(
        `source of ${source.size} bytes is too small for an NTFS boot sector`,
        {
          structure: 'NTFS boot sector',
          offset: 0,
          reason: 'truncated',
        },
      );
    }
    const bytes = new Uint8Array(BOOT_SECTOR_SIZE);
    await source.read(0, bytes);
    const boot = parseBootSector(bytes, 0);
    // @diskube/bitmap holds up to 2^37 bits; Windows itself stops at 2^32 − 1 clusters.
    if (boot.clusterCount > MAX_CLUSTERS) {
      throw new UnsupportedError(
        `${boot.clusterCount} clusters exceed the ${MAX_CLUSTERS} supported`,
        {
          structure: 'NTFS boot sector',
          offset: 0x28,
          reason: 'too-large',
        },
      );
    }
    const volumeBytes = boot.clusterCount * boot.clusterSize;
    if (source.size < volumeBytes) {
      throw new CorruptError(
        `the volume has ${boot.clusterCount} clusters (${volumeBytes} bytes) but the source holds only ${source.size} bytes`,
        { structure: 'NTFS volume', offset: source.size, reason: 'truncated' },
      );
    }
    return boot;
  }

  static async open(source: BlockSource, boot?: BootSector): Promise<NtfsVolume> {
    const vol = new NtfsVolume(source, boot ?? (await NtfsVolume.readBoot(source)));
    await vol.loadMft();
    return vol;
  }

  /**
   * Load $MFT's runlist.
   *
   * The chicken-and-egg problem: MFT records are found through $MFT's $DATA runlist, which is
   * itself stored in MFT records. The boot sector gives the first cluster of $MFT, so record 0
   * can be read directly. If $MFT is fragmented enough, record 0 holds only the first extent of
   * $DATA (VCN 0..k) and an $ATTRIBUTE_LIST naming the extension records that hold the rest.
   * Windows places those extension records inside the part of $MFT that is already mapped, so
   * we add extents in VCN order, reading each extension record through the runlist known so far.
   * An extension record that lies beyond the mapped part cannot be reached: CorruptError
   * `mft-extension-unreachable` (never a guess).
   */
  private async loadMft(): Promise<void> {
    const { boot } = this;
    const recordSize = boot.mftRecordSize;
    const at = boot.mftLcn * boot.clusterSize;
    if (at + recordSize > boot.clusterCount * boot.clusterSize) {
      throw new CorruptError('$MFT record 0 lies outside the volume', {
        structure: 'MFT record 0',
        offset: at,
        reason: 'out-of-range',
      });
    }
    const bytes = new Uint8Array(recordSize);
    await this.source.read(at, bytes);
    const header = parseMftRecord(bytes, FILE_MFT, at);
    const attributes = parseAttributes(bytes, header, at);
    if (!header.inUse || header.baseRecord !== 0) {
      throw new CorruptError('$MFT record 0 is not an in-use base record', {
        structure: 'MFT record 0',
        offset: at,
        reason: 'bad-record',
      });
    }
    const s = '$MFT $DATA';
    const dataExtents = attributes.filter((a) => a.type === AT_DATA && a.name === '');
    const first = dataExtents.find((a) => !a.resident && a.lowestVcn === 0) as
      | NonResidentAttribute
      | undefined;
    if (!first || dataExtents.some((a) => a.resident)) {
      throw new CorruptError('$MFT has no non-resident $DATA attribute starting at VCN 0', {
        structure: s,
        offset: at,
        reason: 'bad-mft',
      });
    }
    const encoding =
      isUnsupportedEncoding(first.flags) ?? (first.flags & ATTR_IS_SPARSE ? 'sparse' : undefined);
    if (encoding) {
      throw new UnsupportedError(`$MFT is ${encoding}; its layout is not read by this library`, {
        structure: s,
        offset: first.offset,
        reason: SYSTEM_FILE_REASONS[encoding],
      });
    }
    const extents = dataExtents as NonResidentAttribute[];
    this.mftRuns = joinExtents(extents, boot.clusterCount, s);
    // Records are addressable only within data_size; the runs must cover that much.
    this.mftRecordCount = Math.floor(first.dataSize / recordSize);
    if (this.mftRuns[0]?.lcn !== boot.mftLcn) {
      throw new CorruptError("$MFT runlist does not start at the boot sector's $MFT cluster", {
        structure: s,
        offset: first.mappingPairsOffset,
        reason: 'bad-mft',
      });
    }

    const list = attributes.find((a) => a.type === AT_ATTRIBUTE_LIST);
    if (list) {
      const value = await this.readAttributeList(list, FILE_MFT);
      const entries = parseAttributeList(value, list.offset, FILE_MFT)
        .filter((e) => e.type === AT_DATA && e.name === '' && e.record !== FILE_MFT)
        .sort((a, b) => a.lowestVcn - b.lowestVcn);
      const seen = new Set<number>();
      // Extents are appended one at a time (never re-decoded), so hostile lists stay linear.
      let end = extents.reduce((n, a) => Math.max(n, a.highestVcn + 1), 0);
      for (const e of entries) {
        if (seen.has(e.record)) continue;
        seen.add(e.record);
        if (e.lowestVcn !== end) {
          throw new CorruptError(
            `$MFT extent in record ${e.record} starts at VCN ${e.lowestVcn}, expected ${end}`,
            { structure: '$MFT attribute list', offset: list.offset, reason: 'bad-vcn' },
          );
        }
        if ((e.record + 1) * recordSize > end * boot.clusterSize) {
          throw new CorruptError(
            `$MFT extension record ${e.record} lies in a part of $MFT that is not mapped yet`,
            {
              structure: '$MFT attribute list',
              offset: list.offset,
              reason: 'mft-extension-unreachable',
            },
          );
        }
        const ext = await this.readRecordFrom(e.record, this.mftRuns);
        this.checkExtension(ext, e.record, FILE_MFT);
        const more = ext.attributes
          .filter(
            (a): a is NonResidentAttribute => a.type === AT_DATA && a.name === '' && !a.resident,
          )
          .sort((a, b) => a.lowestVcn - b.lowestVcn);
        if (more.length === 0) {
          throw new CorruptError(`$MFT extension record ${e.record} holds no $DATA extent`, {
            structure: `MFT record ${e.record}`,
            reason: 'attribute-list',
          });
        }
        for (const x of more) {
          if (x.lowestVcn !== end) {
            throw new CorruptError(`$MFT extent starts at VCN ${x.lowestVcn}, expected ${end}`, {
              structure: s,
              offset: x.offset,
              reason: 'bad-vcn',
            });
          }
          const runs = decodeRunlist(
            x.mappingPairs,
            x.lowestVcn,
            x.highestVcn,
            boot.clusterCount,
            s,
            x.mappingPairsOffset,
          );
          for (const r of runs) this.mftRuns.push(r);
          end = x.highestVcn + 1;
        }
        this.mftExtensionRecords.push(e.record);
      }
    }
    const mapped = this.mftRuns.reduce((n, r) => n + r.length, 0) * boot.clusterSize;
    if (mapped < this.mftRecordCount * recordSize) {
      throw new CorruptError(`$MFT runs map ${mapped} bytes, data_size needs ${first.dataSize}`, {
        structure: s,
        offset: first.offset,
        reason: 'bad-runlist',
      });
    }
    if (this.mftRuns.some((r) => r.lcn === SPARSE)) {
      throw new UnsupportedError('$MFT has sparse runs', {
        structure: s,
        offset: first.offset,
        reason: SYSTEM_FILE_REASONS.sparse,
      });
    }
    if (this.mftRecordCount < 16) {
      throw new CorruptError(
        `$MFT holds ${this.mftRecordCount} records, fewer than the 16 system files`,
        {
          structure: s,
          offset: first.offset,
          reason: 'bad-mft',
        },
      );
    }
  }

  private checkExtension(ext: MftRecord, record: number, base: number): void {
    const s = `MFT record ${record}`;
    if (!ext.header.inUse || ext.header.baseRecord !== base) {
      throw new CorruptError(`extension record ${record} does not belong to base record ${base}`, {
        structure: s,
        reason: 'attribute-list',
      });
    }
    // An extension record never carries its own attribute list; following one could loop.
    if (ext.attributes.some((a) => a.type === AT_ATTRIBUTE_LIST)) {
      throw new CorruptError(`extension record ${record} has its own $ATTRIBUTE_LIST`, {
        structure: s,
        reason: 'attribute-list-loop',
      });
    }
  }

  /** The value of a file's $ATTRIBUTE_LIST (read through its runlist when non-resident). */
  async readAttributeList(list: Attribute, base: number): Promise<Uint8Array> {
    const s = `$ATTRIBUTE_LIST of MFT record ${base}`;
    if (list.resident) return list.value;
    if (list.lowestVcn !== 0 || list.dataSize > MAX_ATTRIBUTE_LIST_SIZE) {
      throw new CorruptError(`attribute list of ${list.dataSize} bytes is not readable`, {
        structure: s,
        offset: list.offset,
        reason: 'bad-size',
      });
    }
    const stream = this.streamOf([list], s)!;
    const value = new Uint8Array(list.dataSize);
    await this.readStream(stream, 0, value, s);
    return value;
  }

  /** Read one MFT record through `runs` (the $MFT runlist), apply fixups and parse it. */
  private async readRecordFrom(record: number, runs: Run[]): Promise<MftRecord> {
    const { mftRecordSize: size, clusterSize } = this.boot;
    const s = `MFT record ${record}`;
    const bytes = new Uint8Array(size);
    let done = 0;
    let firstAt = -1;
    // A record may span clusters (512-byte clusters) and even runs, so map it piece by piece.
    while (done < size) {
      const pos = record * size + done;
      const vcn = Math.floor(pos / clusterSize);
      const run = findRun(runs, vcn);
      if (!run) {
        throw new CorruptError(`record ${record} is not mapped by the $MFT runlist`, {
          structure: s,
          reason: 'record-out-of-range',
        });
      }
      if (run.lcn === SPARSE) {
        throw new UnsupportedError(`record ${record} lies in a sparse run of $MFT`, {
          structure: s,
          reason: SYSTEM_FILE_REASONS.sparse,
        });
      }
      const within = pos - run.vcn * clusterSize;
      const n = Math.min(size - done, run.length * clusterSize - within);
      const at = run.lcn * clusterSize + within;
      if (firstAt < 0) firstAt = at;
      await this.source.read(at, bytes.subarray(done, done + n));
      done += n;
    }
    const header = parseMftRecord(bytes, record, firstAt);
    return { header, attributes: parseAttributes(bytes, header, firstAt) };
  }

  /** Read MFT record `record` (after fixups). */
  async readRecord(record: number): Promise<MftRecord> {
    if (!Number.isSafeInteger(record) || record < 0 || record >= this.mftRecordCount) {
      throw new CorruptError(
        `MFT record ${record} is beyond the ${this.mftRecordCount} records of $MFT`,
        {
          structure: `MFT record ${record}`,
          reason: 'record-out-of-range',
        },
      );
    }
    return this.readRecordFrom(record, this.mftRuns);
  }

  /** Read a file's base record and, through $ATTRIBUTE_LIST, all its extension records. */
  async openFile(record: number): Promise<NtfsFile> {
    const base = await this.readRecord(record);
    const s = `MFT record ${record}`;
    if (!base.header.inUse || base.header.baseRecord !== 0) {
      throw new CorruptError(`MFT record ${record} is not an in-use base record`, {
        structure: s,
        reason: 'bad-record',
      });
    }
    const attributes = [...base.attributes];
    const extensionRecords: number[] = [];
    const list = base.attributes.find((a) => a.type === AT_ATTRIBUTE_LIST);
    if (list) {
      const value = await this.readAttributeList(list, record);
      const seen = new Set<number>([record]);
      for (const e of parseAttributeList(value, list.offset, record)) {
        if (seen.has(e.record)) continue;
        if (seen.size > MAX_EXTENSION_RECORDS) {
          throw new CorruptError(`more than ${MAX_EXTENSION_RECORDS} extension records`, {
            structure: s,
            reason: 'attribute-list',
          });
        }
        seen.add(e.record);
        const ext = await this.readRecord(e.record);
        this.checkExtension(ext, e.record, record);
        attributes.push(...ext.attributes);
        extensionRecords.push(e.record);
      }
    }
    return { record, header: base.header, attributes, extensionRecords };
  }

  /** The stream of attribute `type` named `name` of a file, or undefined when absent. */
  stream(file: NtfsFile, type: number, name = ''): AttributeStream | undefined {
    const extents = file.attributes.filter((a) => a.type === type && a.name === name);
    return this.streamOf(extents, `attribute 0x${type.toString(16)} of MFT record ${file.record}`);
  }

  private streamOf(extents: Attribute[], structure: string): AttributeStream | undefined {
    if (extents.length === 0) return undefined;
    const first = extents[0]!;
    if (first.resident) {
      if (extents.length > 1) {
        throw new CorruptError('resident attribute appears more than once', {
          structure,
          offset: first.offset,
          reason: 'bad-attribute',
        });
      }
      return {
        resident: true,
        name: first.name,
        value: first.value,
        dataSize: first.value.length,
        flags: first.flags,
        offset: first.offset,
      };
    }
    if (extents.some((e) => e.resident)) {
      throw new CorruptError('attribute mixes resident and non-resident extents', {
        structure,
        offset: first.offset,
        reason: 'bad-attribute',
      });
    }
    const nonResident = extents as NonResidentAttribute[];
    const runs = joinExtents(nonResident, this.boot.clusterCount, structure);
    const head = nonResident.find((e) => e.lowestVcn === 0)!;
    const mappedBytes =
      (runs.length ? runs[runs.length - 1]!.vcn + runs[runs.length - 1]!.length : 0) *
      this.boot.clusterSize;
    // Compressed attributes map whole compression units; only plain streams must map all data.
    if (!(head.flags & ATTR_COMPRESSION_MASK) && mappedBytes < head.initializedSize) {
      throw new CorruptError(
        `runs map ${mappedBytes} bytes of ${head.initializedSize} initialized`,
        {
          structure,
          offset: head.offset,
          reason: 'bad-runlist',
        },
      );
    }
    return {
      resident: false,
      name: head.name,
      runs,
      dataSize: head.dataSize,
      initializedSize: head.initializedSize,
      allocatedSize: head.allocatedSize,
      flags: head.flags,
      offset: head.offset,
    };
  }

  /**
   * Fill `dst` from `stream` at byte `offset`. Bytes beyond the initialized size and in sparse
   * runs read as zeros; compressed or encrypted streams are refused.
   */
  async readStream(
    stream: AttributeStream,
    offset: number,
    dst: Uint8Array,
    structure: string,
  ): Promise<void> {
    if (offset < 0 || offset + dst.length > stream.dataSize) {
      throw new CorruptError(
        `read of ${dst.length} bytes at ${offset} is beyond the ${stream.dataSize}-byte stream`,
        {
          structure,
          offset: stream.offset,
          reason: 'out-of-range',
        },
      );
    }
    if (stream.resident) {
      dst.set(stream.value.subarray(offset, offset + dst.length));
      return;
    }
    const encoding = isUnsupportedEncoding(stream.flags);
    if (encoding) {
      throw new UnsupportedError(`${structure} is ${encoding}`, {
        structure,
        offset: stream.offset,
        reason: STREAM_REASONS[encoding],
      });
    }
    const { clusterSize } = this.boot;
    const end = offset + dst.length;
    const initEnd = Math.min(end, stream.initializedSize);
    dst.fill(0, Math.max(0, initEnd - offset));
    let pos = offset;
    while (pos < initEnd) {
      const run = findRun(stream.runs, Math.floor(pos / clusterSize));
      if (!run) {
        throw new CorruptError(`byte ${pos} of the stream is not mapped`, {
          structure,
          offset: stream.offset,
          reason: 'bad-runlist',
        });
      }
      const within = pos - run.vcn * clusterSize;
      const n = Math.min(initEnd - pos, run.length * clusterSize - within);
      const part = dst.subarray(pos - offset, pos - offset + n);
      if (run.lcn === SPARSE) part.fill(0);
      else await this.readSource(run.lcn * clusterSize + within, part, structure);
      pos += n;
    }
  }

  /** Read from the source; a pointer that leads outside it is corruption, not an I/O failure. */
  private async readSource(at: number, dst: Uint8Array, structure: string): Promise<void> {
    try {
      await this.source.read(at, dst);
    } catch (error) {
      if (
        DiskubeError.isInstance(error) &&
        error.code === 'IO' &&
        error.reason === 'out-of-range'
      ) {
        throw new CorruptError(`${structure} points outside the source`, {
          structure,
          offset: at,
          reason: 'out-of-range',
          cause: error,
        });
      }
      throw error instanceof Error ? error : new IoError(String(error), { offset: at });
    }
  }
}
