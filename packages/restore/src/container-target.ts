import { randomBytes, randomUUID } from 'node:crypto';
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import {
  encodeQcow2CompressedEntry,
  encodeQcow2Header,
  encodeQcow2L1Table,
  encodeQcow2L2Table,
  encodeQcow2RefcountBlock,
  encodeQcow2RefcountTable,
  encodeVdiBlockMap,
  encodeVdiHeader,
  planQcow2Metadata,
  qcow2WriterGeometry,
  VDI_BLOCK_FREE,
  vdiWriterLayout,
} from '@diskube/container';
import { checkRange, InvalidArgumentError, IoError } from '@diskube/core';
import type { RestoreTarget } from './target.js';

export type ContainerTargetFormat = 'qcow2' | 'vdi';

export interface ContainerTargetOptions {
  format: ContainerTargetFormat;
  /** Replace an existing file. Default false. */
  overwrite?: boolean;
  /** qcow2 cluster size in bytes, a power of two from 512 to 2 MiB. Default 64 KiB. */
  clusterSize?: number;
  /**
   * qcow2 only: deflate-compress every data cluster that shrinks (as `qemu-img convert -c`).
   * The clusters are staged uncompressed and compressed by `finish`, which then writes a second
   * file: slower, and the staging file needs the uncompressed space until then.
   */
  compress?: 'deflate';
}

/** Host-contiguous pieces are merged up to this size per `pwrite`. */
const MAX_WRITE = 4 * 1024 * 1024;
/** Allocation units per lazily created map table (one qcow2 L2 table's worth for 64 KiB). */
const DEFAULT_TABLE_UNITS = 8192;

/**
 * Guest allocation units (qcow2 clusters, VDI blocks) → their place in the file, in the order
 * they were first written. Tables are created on first touch, so memory follows the data
 * written, not the disk size. An entry holds the 1-based allocation ordinal, 0 = unallocated.
 */
class UnitMap {
  readonly tables = new Map<number, Uint32Array>();
  allocated = 0;
  constructor(readonly perTable: number) {}
  get(unit: number): number {
    return this.tables.get(Math.floor(unit / this.perTable))?.[unit % this.perTable] ?? 0;
  }
  allocate(unit: number): number {
    const t = Math.floor(unit / this.perTable);
    let table = this.tables.get(t);
    if (table === undefined) {
      table = new Uint32Array(this.perTable);
      this.tables.set(t, table);
    }
    this.allocated++;
    table[unit % this.perTable] = this.allocated;
    return this.allocated;
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

type Put = (offset: number, bytes: Uint8Array) => Promise<void>;
/** Fill `dst` from the staging file at `offset`; bytes past its end read as zeros. */
type Get = (offset: number, dst: Uint8Array) => Promise<void>;

/** What differs between qcow2 and VDI: where data units go, and the metadata written at the end. */
interface Layout {
  unit: number;
  perTable: number;
  /** File offset of allocation ordinal `k` (1-based). */
  hostOffset(k: number): number;
  /** True when `finish` writes a new file from the staged one (compression). */
  rewrites: boolean;
  /**
   * Write the tables and header; return the final file length. `put` writes the output file,
   * `get` reads the staged data (the same file unless `rewrites`).
   */
  finish(map: UnitMap, put: Put, get: Get): Promise<number>;
}

function qcow2Layout(size: number, clusterSize: number, compress: boolean): Layout {
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits)) {
    throw new InvalidArgumentError(`qcow2 cluster size ${clusterSize} is not a power of two`, {
      reason: 'cluster-size',
    });
  }
  const g = qcow2WriterGeometry(size, clusterBits);
  const cs = g.clusterSize;
  /** Metadata after `dataClusters` data clusters; `tables` are the encoded L2 tables by L1 index. */
  const writeMetadata = async (
    put: Put,
    dataClusters: number,
    tables: Array<[number, Uint8Array]>,
    dataRefcounts?: ArrayLike<number>,
  ) => {
    const layout = planQcow2Metadata(g, dataClusters, tables.length);
    const l2Offsets = new Array<number>(g.l1Size).fill(0);
    for (const [i, [t, table]] of tables.entries()) {
      l2Offsets[t] = layout.l2Offset + i * cs;
      await put(l2Offsets[t]!, table);
    }
    await put(layout.l1Offset, encodeQcow2L1Table(g, layout, l2Offsets));
    for (let b = 0; b < layout.refcountBlocks; b++) {
      const block = encodeQcow2RefcountBlock(g, layout, b, dataRefcounts);
      await put(layout.refcountBlockOffset + b * cs, block);
    }
    await put(layout.refcountTableOffset, encodeQcow2RefcountTable(g, layout));
    await put(0, encodeQcow2Header(g, layout));
    return layout.totalClusters * cs;
  };
  return {
    unit: cs,
    // One map table per L2 table, so the L2 tables come straight out of the map.
    perTable: g.l2Entries,
    // Cluster 0 is the header; ordinal k is host cluster k.
    hostOffset: (k) => k * cs,
    rewrites: compress,
    async finish(map, put, get) {
      const order = [...map.tables.keys()].sort((a, b) => a - b);
      if (!compress) {
        const tables = order.map((t): [number, Uint8Array] => [
          t,
          encodeQcow2L2Table(g, map.tables.get(t)!),
        ]);
        return writeMetadata(put, map.allocated, tables);
      }
      // Compress each staged cluster in guest order and pack the results byte by byte from
      // cluster 1 on; a cluster that does not shrink is stored whole at the next cluster
      // boundary. Output goes through one buffer, flushed when full (gaps stay zeros).
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
          await get(k * cs, cluster);
          // Overwritten with zeros since it was allocated (patch strategy): drop it.
          if (isZero(cluster)) continue;
          const z = deflateRawSync(cluster);
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
      return writeMetadata(put, dataClusters, tables, refcounts.subarray(0, dataClusters));
    },
  };
}

/** A UUID's 16 bytes in RTUUID (Microsoft GUID) order, as VirtualBox stores it. */
function uuidBytes(): Uint8Array {
  const hex = randomUUID().replace(/-/g, '');
  const b = Uint8Array.from(hex.match(/../g)!, (h) => Number.parseInt(h, 16));
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.slice(8)]);
}

function vdiLayout(size: number): Layout {
  const layout = vdiWriterLayout(size);
  return {
    unit: layout.blockSize,
    perTable: DEFAULT_TABLE_UNITS,
    hostOffset: (k) => layout.offsetData + (k - 1) * layout.blockSize,
    rewrites: false,
    async finish(map, put) {
      const entries = new Uint32Array(layout.blocks).fill(VDI_BLOCK_FREE);
      for (const [t, table] of map.tables) {
        for (let i = 0; i < table.length; i++) {
          if (table[i] !== 0) entries[t * map.perTable + i] = table[i]! - 1;
        }
      }
      await put(layout.offsetBlocks, encodeVdiBlockMap(layout, entries));
      const uuid = uuidBytes();
      await put(
        0,
        encodeVdiHeader(layout, {
          blocksAllocated: map.allocated,
          uuidImage: uuid,
          uuidLastSnap: uuidBytes(),
        }),
      );
      return layout.offsetData + map.allocated * layout.blockSize;
    },
  };
}

/**
 * A qcow2 (v3, 64 KiB clusters) or dynamic VDI (1 MiB blocks) image file built as the restore
 * writes into it. Each guest cluster or block gets its place in the file when a write first
 * brings it non-zero bytes; a partial write lands at its offset inside that place and the rest
 * stays a hole, which reads as zeros, so pieces of one cluster may arrive in any order and be
 * overwritten (the `patch` strategy does). Writes of zeros to a place not yet allocated are
 * dropped: unallocated reads as zeros. The tables and the header are written by `finish`.
 *
 * Like `fileTarget`, the file is built under a temporary name, fsynced and renamed into place;
 * the header is written last, so an interrupted restore never leaves a valid-looking image.
 *
 * `size` is the disk size the restore writes. The container's virtual size is `size` rounded
 * up to a multiple of 512 (hypervisors count whole sectors); the padding reads as zeros.
 */
export async function containerTarget(
  path: string,
  size: number,
  options: ContainerTargetOptions,
): Promise<RestoreTarget & { path: string; format: ContainerTargetFormat }> {
  const { format } = options;
  let layout: Layout;
  if (options.compress !== undefined && (format !== 'qcow2' || options.compress !== 'deflate')) {
    throw new InvalidArgumentError(
      `${format} output cannot be compressed with ${options.compress}`,
      {
        reason: 'compress',
      },
    );
  }
  if (format === 'qcow2')
    layout = qcow2Layout(size, options.clusterSize ?? 65536, options.compress === 'deflate');
  else if (format === 'vdi') layout = vdiLayout(size);
  else {
    throw new InvalidArgumentError(`unknown container format "${String(format)}"`, {
      reason: 'format',
    });
  }
  const existing = await stat(path).catch(() => null);
  if (existing !== null && !existing.isFile()) {
    throw new InvalidArgumentError(`${path} is not a regular file: a ${format} image is a file`, {
      reason: 'not-a-file',
    });
  }
  if (existing !== null && !options.overwrite)
    throw new InvalidArgumentError(`${path} already exists`, { reason: 'exists' });
  const tempName = () =>
    join(dirname(path), `.${basename(path)}.partial-${randomBytes(6).toString('hex')}`);
  const create = async (name: string) => {
    try {
      return await open(name, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (cause) {
      throw new IoError(`cannot create ${name}`, { reason: 'open', cause });
    }
  };
  const putTo =
    (handle: FileHandle): Put =>
    async (offset, bytes) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(
          bytes,
          done,
          bytes.length - done,
          offset + done,
        );
        done += bytesWritten;
      }
    };
  const temp = tempName();
  const fh = await create(temp);
  const put = putTo(fh);
  const get: Get = async (offset, dst) => {
    let done = 0;
    while (done < dst.length) {
      const { bytesRead } = await fh.read(dst, done, dst.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    dst.fill(0, done);
  };
  // With compression the output is a second file, built from the staged one by `finish`.
  let output: { name: string; fh: FileHandle } | null = null;
  const cleanup = async () => {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    if (output !== null) {
      await output.fh.close().catch(() => {});
      await unlink(output.name).catch(() => {});
    }
  };
  const map = new UnitMap(layout.perTable);
  const { unit } = layout;
  let finished = false;
  return {
    path,
    format,
    size,
    zeroed: true,
    async write(offset, data) {
      checkRange(size, offset, data.length, path);
      if (finished)
        throw new InvalidArgumentError(`${path} is already finished`, { reason: 'state' });
      // Map every piece synchronously (no await in between, so concurrent writes never
      // allocate one unit twice), merging pieces that are adjacent in the file.
      const runs: Array<[number, Uint8Array]> = [];
      let runStart = -1;
      let runFrom = 0;
      let runLength = 0;
      for (let at = 0; at < data.length; ) {
        const guest = offset + at;
        const u = Math.floor(guest / unit);
        const within = guest - u * unit;
        const length = Math.min(data.length - at, unit - within);
        let k = map.get(u);
        if (k === 0 && isZero(data.subarray(at, at + length))) {
          at += length;
          continue;
        }
        if (k === 0) k = map.allocate(u);
        const host = layout.hostOffset(k) + within;
        // Adjacent in the file and in `data` (a skipped zero piece breaks the run).
        const extends_ =
          runLength > 0 &&
          host === runStart + runLength &&
          at === runFrom + runLength &&
          runLength + length <= MAX_WRITE;
        if (extends_) {
          runLength += length;
        } else {
          if (runLength > 0) runs.push([runStart, data.subarray(runFrom, runFrom + runLength)]);
          runStart = host;
          runFrom = at;
          runLength = length;
        }
        at += length;
      }
      if (runLength > 0) runs.push([runStart, data.subarray(runFrom, runFrom + runLength)]);
      for (const [host, bytes] of runs) await put(host, bytes);
    },
    async finish() {
      finished = true;
      try {
        if (layout.rewrites) {
          const name = tempName();
          output = { name, fh: await create(name) };
          const length = await layout.finish(map, putTo(output.fh), get);
          await output.fh.truncate(length);
          await output.fh.sync();
          await output.fh.close();
          await rename(name, path);
          output = null;
          await fh.close();
          await unlink(temp);
          return;
        }
        const length = await layout.finish(map, put, get);
        await fh.truncate(length);
        await fh.sync();
        await fh.close();
        await rename(temp, path);
      } catch (error) {
        await cleanup();
        throw error;
      }
    },
    async abort() {
      finished = true;
      await cleanup();
    },
  };
}
