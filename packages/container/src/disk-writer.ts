import { checkRange, InvalidArgumentError } from '@diskube/core';
import { deflateSync } from 'fflate';
import {
  encodeQcow2CompressedEntry,
  encodeQcow2Header,
  encodeQcow2L1Table,
  encodeQcow2L2Table,
  encodeQcow2RefcountBlock,
  encodeQcow2RefcountTable,
  planQcow2Metadata,
  QCOW2_ZERO_CLUSTER,
  qcow2BackingLayout,
  qcow2WriterGeometry,
} from './qcow2-writer.js';
import {
  encodeVdiBlockMap,
  encodeVdiHeader,
  VDI_BLOCK_FREE,
  vdiWriterLayout,
} from './vdi-writer.js';

// Writing a virtual disk: the guest bytes arrive as `write(offset, bytes)` calls in any order;
// each guest unit (qcow2 cluster, VDI block) gets its place in the file when a write first
// brings it non-zero bytes, and `finish` writes the tables and, last, the header. A qcow2
// overlay (`backing`) also remembers the units given only zeros, as zero clusters that mask the
// backing file. The layouts are described in FORMAT.md ("Writing qcow2 and VDI").

export type DiskWriterFormat = 'qcow2' | 'vdi';

/** Where a disk writer puts the file's bytes: positioned writes, and the final length. */
export interface DiskSink {
  /** Write all of `bytes` at byte `offset` of the file (the file grows as needed). */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Set the file's length; called once by `finish`, after the last write. */
  truncate(length: number): Promise<void>;
}

/** A sink that can also read back what was written (bytes never written read as zeros). */
export interface StagingSink extends DiskSink {
  /** Fill `dst` from byte `offset`; bytes never written, or past the end, read as zeros. */
  read(offset: number, dst: Uint8Array): Promise<void>;
}

export interface DiskWriterOptions {
  /** qcow2 cluster size in bytes, a power of two from 512 to 2 MiB. Default 64 KiB. */
  clusterSize?: number;
  /**
   * qcow2 only: deflate-compress every data cluster that shrinks (as `qemu-img convert -c`).
   * Clusters are staged uncompressed in `staging` and packed into the sink by `finish`, so
   * `staging` needs the uncompressed space until then.
   */
  compress?: 'deflate';
  /** Required with `compress`: holds the uncompressed clusters until `finish`. */
  staging?: StagingSink;
  /**
   * A raw (RFC 1951) deflate of one cluster, for `compress`. Default fflate's `deflateSync`
   * (level 6); in Node, `zlib.deflateRawSync` is faster.
   */
  deflateRaw?: (cluster: Uint8Array) => Uint8Array;
  /**
   * qcow2 only: make an overlay on this backing file (the name is stored as given, relative to
   * the overlay's directory unless absolute), e.g. `{ file: 'base.qcow2', format: 'qcow2' }`.
   * `format` is stored as the backing format (QEMU then does not probe the file). Units never
   * written read from the backing file; see `DiskWriter.write` for the rest.
   */
  backing?: { file: string; format?: 'raw' | 'qcow2' | 'vmdk' | 'vdi' | 'vhd' | 'vhdx' | string };
}

/** A qcow2 or VDI image being written. */
export interface DiskWriter {
  readonly format: DiskWriterFormat;
  /** The disk size the writes cover (`write` accepts offsets below it). */
  readonly size: number;
  /** The size written to the header: `size` rounded up to whole 512-byte sectors. */
  readonly virtualSize: number;
  /** Bytes per guest unit: qcow2 cluster or VDI block. */
  readonly allocationUnit: number;
  /**
   * Write guest bytes at `offset` (any alignment, any order, overwrites allowed, several writes
   * in flight). A unit that only ever receives zeros stays unallocated.
   *
   * With `backing`, any write, zeros included, masks the backing file for the whole unit it
   * touches: a unit given only zeros becomes a zero cluster, and one given non-zero bytes is
   * allocated, its bytes not written reading as zeros. So write whole units (`allocationUnit`);
   * units never written read from the backing file.
   */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Write the tables and the header (last), truncate the sink; nothing may follow. */
  finish(): Promise<{ fileLength: number }>;
  /** Refuse further writes. The sinks are the caller's to discard. */
  abort(): void;
}

/** Host-contiguous pieces are merged up to this size per sink write. */
const MAX_WRITE = 4 * 1024 * 1024;
/** VDI blocks per lazily created map table. */
const VDI_TABLE_UNITS = 8192;

/** A `UnitMap` entry: the unit was given only zeros (an overlay's zero cluster). */
const ZERO_UNIT = 0xffffffff;

/**
 * Guest allocation units → their place in the file, in the order they were first written.
 * Tables are created on first touch, so memory follows the data written, not the disk size. An
 * entry holds the 1-based allocation ordinal, 0 = unallocated, `ZERO_UNIT` = zeros only.
 */
class UnitMap {
  readonly tables = new Map<number, Uint32Array>();
  allocated = 0;
  constructor(readonly perTable: number) {}
  get(unit: number): number {
    return this.tables.get(Math.floor(unit / this.perTable))?.[unit % this.perTable] ?? 0;
  }
  /** Set `unit`'s entry to `value`, creating its table on first touch. */
  private set(unit: number, value: number): void {
    const t = Math.floor(unit / this.perTable);
    let table = this.tables.get(t);
    if (table === undefined) {
      table = new Uint32Array(this.perTable);
      this.tables.set(t, table);
    }
    table[unit % this.perTable] = value;
  }
  allocate(unit: number): number {
    if (this.allocated + 1 >= ZERO_UNIT) {
      throw new InvalidArgumentError('more than 2^32 - 2 units written', { reason: 'size' });
    }
    this.allocated++;
    this.set(unit, this.allocated);
    return this.allocated;
  }
  markZero(unit: number): void {
    this.set(unit, ZERO_UNIT);
  }
}

function isZero(bytes: Uint8Array): boolean {
  if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** What differs between qcow2 and VDI: where data units go, and what `finish` writes. */
interface Layout {
  unit: number;
  perTable: number;
  virtualSize: number;
  /** Units given only zeros are kept (`ZERO_UNIT`) rather than left unallocated. */
  keepZeroUnits: boolean;
  /** File offset of allocation ordinal `k` (1-based) in the file the writes go to. */
  hostOffset(k: number): number;
  /** Write the tables and the header; return the final file length. */
  finish(map: UnitMap): Promise<number>;
}

function qcow2Layout(
  size: number,
  sink: DiskSink,
  options: DiskWriterOptions,
): { layout: Layout; data: DiskSink } {
  const clusterSize = options.clusterSize ?? 65536;
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits)) {
    throw new InvalidArgumentError(`qcow2 cluster size ${clusterSize} is not a power of two`, {
      reason: 'cluster-size',
    });
  }
  const g = qcow2WriterGeometry(size, clusterBits);
  const cs = g.clusterSize;
  const { backing } = options;
  // Refuse a name that cannot be stored now, not at `finish`.
  if (backing !== undefined) qcow2BackingLayout(g, backing);
  /** Host cluster of allocation ordinal `k`, or a zero cluster: `encodeQcow2L2Table`'s input. */
  const hostCluster = (k: number) => (k === ZERO_UNIT ? QCOW2_ZERO_CLUSTER : k);
  const put = (offset: number, bytes: Uint8Array) => sink.write(offset, bytes);
  /** Metadata after `dataClusters` data clusters; `tables` are the encoded L2 tables by L1 index. */
  const writeMetadata = async (
    dataClusters: number,
    tables: Array<[number, Uint8Array]>,
    dataRefcounts?: ArrayLike<number>,
  ) => {
    const plan = planQcow2Metadata(g, dataClusters, tables.length);
    const l2Offsets = new Array<number>(g.l1Size).fill(0);
    for (const [i, [t, table]] of tables.entries()) {
      l2Offsets[t] = plan.l2Offset + i * cs;
      await put(l2Offsets[t]!, table);
    }
    await put(plan.l1Offset, encodeQcow2L1Table(g, plan, l2Offsets));
    for (let b = 0; b < plan.refcountBlocks; b++) {
      await put(
        plan.refcountBlockOffset + b * cs,
        encodeQcow2RefcountBlock(g, plan, b, dataRefcounts),
      );
    }
    await put(plan.refcountTableOffset, encodeQcow2RefcountTable(g, plan));
    await put(0, encodeQcow2Header(g, plan, backing));
    return plan.totalClusters * cs;
  };
  const base = {
    unit: cs,
    // One map table per L2 table, so the L2 tables come straight out of the map.
    perTable: g.l2Entries,
    virtualSize: g.virtualSize,
    keepZeroUnits: backing !== undefined,
    // Cluster 0 is the header; ordinal k is host cluster k (of the staging file when packing).
    hostOffset: (k: number) => k * cs,
  };
  if (options.compress === undefined) {
    const layout: Layout = {
      ...base,
      async finish(map) {
        const order = [...map.tables.keys()].sort((a, b) => a - b);
        const tables = order.map((t): [number, Uint8Array] => [
          t,
          encodeQcow2L2Table(g, Float64Array.from(map.tables.get(t)!, hostCluster)),
        ]);
        return writeMetadata(map.allocated, tables);
      },
    };
    return { layout, data: sink };
  }
  const { staging } = options;
  if (options.compress !== 'deflate') {
    throw new InvalidArgumentError(
      `qcow2 output cannot be compressed with ${String(options.compress)}`,
      { reason: 'compress' },
    );
  }
  if (staging === undefined) {
    throw new InvalidArgumentError('compressed qcow2 output needs a staging sink', {
      reason: 'compress',
    });
  }
  const deflateRaw = options.deflateRaw ?? ((bytes: Uint8Array) => deflateSync(bytes));
  const layout: Layout = {
    ...base,
    // Compress each staged cluster in guest order and pack the results byte by byte from
    // cluster 1 on; a cluster that does not shrink is stored whole at the next cluster
    // boundary. Output goes through one buffer, flushed when full (gaps stay zeros).
    async finish(map) {
      const order = [...map.tables.keys()].sort((a, b) => a - b);
      const refcounts = new Uint16Array(map.allocated);
      const tables: Array<[number, Uint8Array]> = [];
      const cluster = new Uint8Array(cs);
      const buffer = new Uint8Array(Math.max(4 * 1024 * 1024, 2 * cs));
      let bufferStart = cs;
      let pos = cs;
      const append = async (at: number, bytes: Uint8Array) => {
        if (at + bytes.length - bufferStart > buffer.length) {
          await put(bufferStart, buffer.subarray(0, at - bufferStart));
          buffer.fill(0);
          bufferStart = at;
        }
        buffer.set(bytes, at - bufferStart);
      };
      for (const t of order) {
        const staged = map.tables.get(t)!;
        const host = new Float64Array(g.l2Entries);
        const packed: Array<[number, number, number]> = [];
        for (let i = 0; i < staged.length; i++) {
          const k = staged[i]!;
          if (k === 0) continue;
          if (k === ZERO_UNIT) {
            host[i] = QCOW2_ZERO_CLUSTER;
            continue;
          }
          await staging.read(k * cs, cluster);
          // Overwritten with zeros since it was allocated (patch strategy): drop it, or keep it
          // as a zero cluster masking the backing file.
          if (isZero(cluster)) {
            if (backing !== undefined) host[i] = QCOW2_ZERO_CLUSTER;
            continue;
          }
          const z = deflateRaw(cluster);
          if (z.length < cs) {
            const e = encodeQcow2CompressedEntry(g, pos, z.length);
            await append(pos, z);
            const last = Math.floor((pos + e.storedLength - 1) / cs);
            for (let h = Math.floor(pos / cs); h <= last; h++) refcounts[h - 1]!++;
            packed.push([i, e.hi, e.lo]);
            pos += z.length;
          } else {
            pos = Math.ceil(pos / cs) * cs;
            await append(pos, cluster);
            host[i] = pos / cs;
            refcounts[pos / cs - 1] = 1;
            pos += cs;
          }
        }
        if (packed.length === 0 && host.every((h) => h === 0)) continue;
        const table = encodeQcow2L2Table(g, host);
        const view = new DataView(table.buffer);
        for (const [i, hi, lo] of packed) {
          view.setUint32(i * 8, hi);
          view.setUint32(i * 8 + 4, lo);
        }
        tables.push([t, table]);
      }
      // The last compressed piece's sectors may run past `pos`, never past its cluster.
      const dataEnd = Math.ceil(pos / cs) * cs;
      await put(bufferStart, buffer.subarray(0, dataEnd - bufferStart));
      const dataClusters = dataEnd / cs - 1;
      return writeMetadata(dataClusters, tables, refcounts.subarray(0, dataClusters));
    },
  };
  return { layout, data: staging };
}

/** A random (version 4) UUID's 16 bytes in RTUUID (Microsoft GUID) order, as VirtualBox stores it. */
function uuidBytes(): Uint8Array {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.slice(8)]);
}

function vdiLayout(size: number, sink: DiskSink, options: DiskWriterOptions): Layout {
  if (options.backing !== undefined) {
    throw new InvalidArgumentError('the VDI writer cannot write differencing images (backing)', {
      reason: 'backing',
    });
  }
  if (options.compress !== undefined) {
    throw new InvalidArgumentError(
      `VDI output cannot be compressed (${String(options.compress)})`,
      {
        reason: 'compress',
      },
    );
  }
  const layout = vdiWriterLayout(size);
  return {
    unit: layout.blockSize,
    perTable: VDI_TABLE_UNITS,
    virtualSize: layout.diskSize,
    keepZeroUnits: false,
    hostOffset: (k) => layout.offsetData + (k - 1) * layout.blockSize,
    async finish(map) {
      const entries = new Uint32Array(layout.blocks).fill(VDI_BLOCK_FREE);
      for (const [t, table] of map.tables) {
        for (let i = 0; i < table.length; i++) {
          if (table[i] !== 0) entries[t * map.perTable + i] = table[i]! - 1;
        }
      }
      await sink.write(layout.offsetBlocks, encodeVdiBlockMap(layout, entries));
      await sink.write(
        0,
        encodeVdiHeader(layout, {
          blocksAllocated: map.allocated,
          uuidImage: uuidBytes(),
          uuidLastSnap: uuidBytes(),
        }),
      );
      return layout.offsetData + map.allocated * layout.blockSize;
    },
  };
}

/**
 * Write a qcow2 (v3, 64 KiB clusters by default, optionally deflate-compressed) or dynamic VDI
 * (1 MiB blocks) image of a `size`-byte disk into `sink`. The header is written last, by
 * `finish`, so a sink abandoned earlier never holds a valid-looking image. The virtual size is
 * `size` rounded up to a multiple of 512 (hypervisors count whole sectors); the padding reads
 * as zeros.
 *
 * ```ts
 * const writer = createDiskWriter('qcow2', sink, disk.length);
 * await writer.write(0, disk);
 * const { fileLength } = await writer.finish();
 * ```
 */
export function createDiskWriter(
  format: DiskWriterFormat,
  sink: DiskSink,
  size: number,
  options: DiskWriterOptions = {},
): DiskWriter {
  let layout: Layout;
  let data: DiskSink = sink;
  if (format === 'qcow2') ({ layout, data } = qcow2Layout(size, sink, options));
  else if (format === 'vdi') layout = vdiLayout(size, sink, options);
  else {
    throw new InvalidArgumentError(`cannot write a "${String(format)}" image (qcow2 or vdi)`, {
      reason: 'format',
    });
  }
  const map = new UnitMap(layout.perTable);
  const { unit } = layout;
  let state: 'open' | 'finished' | 'aborted' = 'open';
  const refuse = () =>
    new InvalidArgumentError(`the ${format} writer is already ${state}`, { reason: 'state' });
  return {
    format,
    size,
    virtualSize: layout.virtualSize,
    allocationUnit: unit,
    async write(offset, bytes) {
      if (state !== 'open') throw refuse();
      checkRange(size, offset, bytes.length, `${format} image`);
      // Map every piece synchronously (no await in between, so concurrent writes never
      // allocate one unit twice), merging pieces that are adjacent in the file.
      const runs: Array<[number, Uint8Array]> = [];
      let runStart = -1;
      let runFrom = 0;
      let runLength = 0;
      for (let at = 0; at < bytes.length; ) {
        const guest = offset + at;
        const u = Math.floor(guest / unit);
        const within = guest - u * unit;
        const length = Math.min(bytes.length - at, unit - within);
        let k = map.get(u);
        if ((k === 0 || k === ZERO_UNIT) && isZero(bytes.subarray(at, at + length))) {
          if (k === 0 && layout.keepZeroUnits) map.markZero(u);
          at += length;
          continue;
        }
        if (k === 0 || k === ZERO_UNIT) k = map.allocate(u);
        const host = layout.hostOffset(k) + within;
        // Adjacent in the file and in `bytes` (a skipped zero piece breaks the run).
        const extends_ =
          runLength > 0 &&
          host === runStart + runLength &&
          at === runFrom + runLength &&
          runLength + length <= MAX_WRITE;
        if (extends_) {
          runLength += length;
        } else {
          if (runLength > 0) runs.push([runStart, bytes.subarray(runFrom, runFrom + runLength)]);
          runStart = host;
          runFrom = at;
          runLength = length;
        }
        at += length;
      }
      if (runLength > 0) runs.push([runStart, bytes.subarray(runFrom, runFrom + runLength)]);
      for (const [host, piece] of runs) await data.write(host, piece);
    },
    async finish() {
      if (state !== 'open') throw refuse();
      state = 'finished';
      const fileLength = await layout.finish(map);
      await sink.truncate(fileLength);
      return { fileLength };
    },
    abort() {
      if (state === 'open') state = 'aborted';
    },
  };
}
