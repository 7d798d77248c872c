import { type BlockSource, CorruptError, UnsupportedError } from '@diskube/core';
import type { ParentLink } from './chain.js';
import { inflateRaw, unzstd } from './decompress.js';
import type { ContainerFormat, Mapper, Run } from './disk.js';
import { ByteLru } from './lru.js';
import { parseQcow2Extensions, parseQcow2Header, type Qcow2Header } from './qcow2-header.js';
import { checkInFile, readStructure } from './read.js';

// Sources: QEMU docs/interop/qcow2.txt ("Cluster mapping", "Compressed Clusters Descriptor").
//
// L1 and L2 entries are 64-bit big-endian. We read them as two 32-bit halves (hi, lo), which
// keeps the hot path free of BigInt:
//   L1: bits 9-55 offset of the L2 table (0 = unallocated), bit 63 COPIED.
//   L2 standard: bit 0 all-zeros (v3), bits 9-55 host cluster offset, bit 62 = 0, bit 63 COPIED.
//   L2 compressed: bit 62 = 1; with x = 62 - (cluster_bits - 8), bits 0..x-1 are the host byte
//   offset and bits x..61 the number of additional 512-byte sectors.

const TWO32 = 2 ** 32;

/** qemu's driver names for `backing_fmt`, as our formats. */
const BACKING_FORMATS: Record<string, ContainerFormat> = {
  qcow2: 'qcow2',
  raw: 'raw',
  vmdk: 'vmdk',
  vdi: 'vdi',
  vpc: 'vhd',
  vhdx: 'vhdx',
};

export async function openQcow2(
  file: BlockSource,
  cacheBytes: number,
): Promise<{ mapper: Mapper; header: Qcow2Header; parent: ParentLink | undefined }> {
  const headerBytes = await readStructure(file, 0, Math.min(file.size, 4096), 'qcow2 header');
  const header = parseQcow2Header(headerBytes);
  const { clusterSize, clusterBits, size, extendedL2 } = header;
  // The header extensions live in the first cluster (QEMU reads them up to the cluster's end).
  const headCluster =
    clusterSize <= headerBytes.length
      ? headerBytes.subarray(0, clusterSize)
      : await readStructure(file, 0, Math.min(file.size, clusterSize), 'qcow2 header cluster');
  const { dataFile, backingFormat } = parseQcow2Extensions(headCluster, header.headerLength);
  let parent: ParentLink | undefined;
  if (header.backingFileOffset !== 0) {
    const name = await readStructure(
      file,
      header.backingFileOffset,
      header.backingFileSize,
      'qcow2 backing file name',
    );
    const backingFile = new TextDecoder().decode(name);
    header.backingFile = backingFile;
    // backing_fmt is honoured (a raw backing file is not probed, as in QEMU); without it the
    // parent is probed by magic. A format we do not read is refused.
    const format = backingFormat === undefined ? undefined : BACKING_FORMATS[backingFormat];
    if (backingFormat !== undefined && format === undefined) {
      throw new UnsupportedError(
        `qcow2 backing file "${backingFile}" has format "${backingFormat}", which is not supported`,
        {
          structure: 'qcow2 header extension',
          offset: header.headerLength,
          reason: 'backing-file',
        },
      );
    }
    parent = {
      hints: [backingFile],
      kind: 'path',
      format,
      expect: [],
      structure: 'qcow2 header',
      // Without a resolver the chain cannot be followed: today's refusal.
      refusal: () =>
        new UnsupportedError(
          `qcow2 image has a backing file "${backingFile}"; pass resolveParent to follow it (or flatten it with qemu-img convert)`,
          { structure: 'qcow2 header', offset: 0x08, reason: 'backing-file' },
        ),
    };
  }
  if (header.externalDataFile || dataFile !== undefined) {
    // Guest clusters live in another file, at their guest offsets; the L2 tables here only say
    // which are allocated. Reading this file alone would lose every byte of data.
    const named =
      dataFile === undefined
        ? 'an external data file it does not name'
        : `external data file "${dataFile}"`;
    throw new UnsupportedError(
      `qcow2 image keeps its data in ${named}; images with an external data file are not supported (convert it with qemu-img convert first)`,
      {
        structure: 'qcow2 header',
        offset: header.externalDataFile ? 0x48 : header.headerLength,
        reason: 'external-data-file',
      },
    );
  }
  const l1Bytes = await readStructure(
    file,
    header.l1TableOffset,
    header.l1Size * 8,
    'qcow2 L1 table',
  );
  const l1 = new DataView(l1Bytes.buffer, l1Bytes.byteOffset, l1Bytes.byteLength);
  // Standard L2 entries are 64-bit; extended ones 128-bit (entry, then the subcluster bitmap).
  const entryBytes = extendedL2 ? 16 : 8;
  const l2PerTable = clusterSize / entryBytes;
  const subclusterSize = clusterSize / 32;
  const l1Need = Math.ceil(size / (clusterSize * l2PerTable));
  const l1End = header.l1TableOffset + header.l1Size * 8;
  // Validate every used L1 entry once: aligned, inside the file, clear of the header and L1
  // table, and no two entries sharing one L2 table (which would alias guest ranges).
  const l2Offsets = new Array<number>(l1Need);
  const seen = new Set<number>();
  for (let i = 0; i < l1Need; i++) {
    const hi = l1.getUint32(i * 8);
    const lo = l1.getUint32(i * 8 + 4);
    const at = header.l1TableOffset + i * 8;
    if ((hi & 0x7f000000) !== 0 || (lo & 0x1ff) !== 0) {
      throw new CorruptError(`L1 entry ${i} has reserved bits set`, {
        structure: 'qcow2 L1 table',
        offset: at,
        reason: 'reserved',
      });
    }
    const off = (hi & 0x00ffffff) * TWO32 + (lo & 0xfffffe00);
    l2Offsets[i] = off;
    if (off === 0) continue;
    if (off % clusterSize !== 0) {
      throw new CorruptError(`L2 table ${i} at ${off} is not cluster-aligned`, {
        structure: 'qcow2 L1 table',
        offset: at,
        reason: 'unaligned',
      });
    }
    checkInFile(file.size, off, clusterSize, 'qcow2 L2 table');
    if (off < clusterSize || (off < l1End && off + clusterSize > header.l1TableOffset)) {
      throw new CorruptError(`L2 table ${i} at ${off} overlaps the header or L1 table`, {
        structure: 'qcow2 L1 table',
        offset: at,
        reason: 'overlap',
      });
    }
    if (seen.has(off)) {
      throw new CorruptError(`L2 table at ${off} is referenced twice`, {
        structure: 'qcow2 L1 table',
        offset: at,
        reason: 'overlap',
      });
    }
    seen.add(off);
  }
  seen.clear();
  // Entries past the ones the virtual size needs must be empty (QEMU clears them when it
  // shrinks an image): one that maps data says the size field lies, and the data past it would
  // be silently dropped.
  for (let i = l1Need; i < header.l1Size; i++) {
    if (l1.getUint32(i * 8) !== 0 || l1.getUint32(i * 8 + 4) !== 0) {
      throw new CorruptError(`L1 entry ${i} maps clusters beyond the ${size}-byte virtual size`, {
        structure: 'qcow2 L1 table',
        offset: header.l1TableOffset + i * 8,
        reason: 'out-of-range',
      });
    }
  }
  checkInFile(
    file.size,
    header.refcountTableOffset,
    header.refcountTableClusters * clusterSize,
    'qcow2 refcount table',
  );

  const tables = new ByteLru(cacheBytes);
  const loadL2 = (off: number) =>
    tables.get(off, () => readStructure(file, off, clusterSize, 'qcow2 L2 table'));
  const x = 62 - (clusterBits - 8);
  const sectorMask = 2 ** (62 - x) - 1;
  const hostHiMask = 2 ** (x - 32) - 1;

  const u32 = (t: Uint8Array, i: number) =>
    ((t[i]! << 24) | (t[i + 1]! << 16) | (t[i + 2]! << 8) | t[i + 3]!) >>> 0;
  /** The L2 entry of `cluster`; `zero`/`alloc` are the subcluster bitmap halves (extended L2). */
  async function entry(
    cluster: number,
  ): Promise<{ hi: number; lo: number; at: number; zero: number; alloc: number }> {
    const l1Index = Math.floor(cluster / l2PerTable);
    const l2Off = l2Offsets[l1Index]!;
    if (l2Off === 0) return { hi: 0, lo: 0, at: 0, zero: 0, alloc: 0 };
    const table = await loadL2(l2Off);
    const i = (cluster % l2PerTable) * entryBytes;
    return {
      hi: u32(table, i),
      lo: u32(table, i + 4),
      at: l2Off + i,
      // Bitmap (big-endian u64): bits 32-63 "reads as zero", bits 0-31 "allocated".
      zero: extendedL2 ? u32(table, i + 8) : 0,
      alloc: extendedL2 ? u32(table, i + 12) : 0,
    };
  }

  function classify(
    hi: number,
    lo: number,
    at: number,
    cluster: number,
    length: number,
    within: number,
  ): Run {
    if (hi & 0x40000000) {
      // Compressed cluster.
      const host = (hi & hostHiMask) * TWO32 + lo;
      const sectors = ((hi >>> (x - 32)) & sectorMask) + 1;
      const stored = Math.min(sectors * 512 - (host % 512), file.size - host);
      if (host < clusterSize || host >= file.size) {
        throw new CorruptError(
          `compressed cluster ${cluster} at ${host} lies outside the data area`,
          {
            structure: 'qcow2 L2 table',
            offset: at,
            reason: 'out-of-range',
          },
        );
      }
      return {
        kind: 'unit',
        length,
        key: cluster * clusterSize,
        at: within,
        load: async () => {
          const data = await readStructure(file, host, stored, 'qcow2 compressed cluster');
          return header.compressionType === 'zstd'
            ? unzstd(data, clusterSize, 'qcow2 compressed cluster', host)
            : inflateRaw(data, clusterSize, 'qcow2 compressed cluster', host);
        },
      };
    }
    if ((hi & 0x3f000000) !== 0 || (lo & 0x1fe) !== 0) {
      throw new CorruptError(`L2 entry for cluster ${cluster} has reserved bits set`, {
        structure: 'qcow2 L2 table',
        offset: at,
        reason: 'reserved',
      });
    }
    const host = (hi & 0x00ffffff) * TWO32 + (lo & 0xfffffe00);
    if (extendedL2 && lo & 1) {
      // Bit 0 is reserved with extended L2 (the zero bits moved to the bitmap).
      throw new CorruptError(`L2 entry for cluster ${cluster} has reserved bit 0 set`, {
        structure: 'qcow2 L2 table',
        offset: at,
        reason: 'reserved',
      });
    }
    if (lo & 1) {
      if (header.version === 2) {
        throw new CorruptError(`zero flag in a version 2 image (cluster ${cluster})`, {
          structure: 'qcow2 L2 table',
          offset: at,
          reason: 'reserved',
        });
      }
      return { kind: 'zero', length };
    }
    // Unallocated: the backing file shows through (zeros without one).
    if (host === 0) return { kind: 'absent', length };
    if (host % clusterSize !== 0 || host < clusterSize) {
      throw new CorruptError(
        `data cluster ${cluster} at ${host} is unaligned or overlaps the header`,
        {
          structure: 'qcow2 L2 table',
          offset: at,
          reason: host < clusterSize ? 'overlap' : 'unaligned',
        },
      );
    }
    return { kind: 'data', length, host: host + within };
  }

  /**
   * Sources: qcow2.txt "Extended L2 Entries". Subcluster `s` of a standard cluster is data when
   * allocation bit s is set (at host + s × subcluster size), zeros when zero bit s is set,
   * else unallocated (the backing file shows through). Both bits set is invalid. Compressed
   * clusters have an all-zero bitmap and are whole.
   */
  function subcluster(
    e: { hi: number; lo: number; at: number; zero: number; alloc: number },
    cluster: number,
    s: number,
  ): 'data' | 'zero' | 'absent' {
    const a = (e.alloc >>> s) & 1;
    const z = (e.zero >>> s) & 1;
    if (a && z) {
      throw new CorruptError(`subcluster ${s} of cluster ${cluster} is both allocated and zero`, {
        structure: 'qcow2 L2 table',
        offset: e.at + 8,
        reason: 'reserved',
      });
    }
    if (a) {
      if (e.hi === 0 && (e.lo & 0xfffffe00) === 0) {
        throw new CorruptError(
          `subcluster ${s} of cluster ${cluster} is allocated but the cluster has no host offset`,
          { structure: 'qcow2 L2 table', offset: e.at, reason: 'out-of-range' },
        );
      }
      return 'data';
    }
    return z ? 'zero' : 'absent';
  }

  async function extendedRun(offset: number, max: number): Promise<Run> {
    const cluster = Math.floor(offset / clusterSize);
    const within = offset - cluster * clusterSize;
    const e = await entry(cluster);
    if (e.hi & 0x40000000) {
      if (e.alloc !== 0 || e.zero !== 0) {
        throw new CorruptError(`compressed cluster ${cluster} has subcluster bits set`, {
          structure: 'qcow2 L2 table',
          offset: e.at + 8,
          reason: 'reserved',
        });
      }
      return classify(e.hi, e.lo, e.at, cluster, Math.min(max, clusterSize - within), within);
    }
    // Extend over following subclusters of the same kind in this cluster.
    const first = Math.floor(within / subclusterSize);
    const kind = subcluster(e, cluster, first);
    let end = (first + 1) * subclusterSize;
    while (
      end < clusterSize &&
      end - within < max &&
      subcluster(e, cluster, end / subclusterSize) === kind
    ) {
      end += subclusterSize;
    }
    const length = Math.min(max, end - within);
    if (kind !== 'data') return { kind, length };
    return classify(e.hi, e.lo, e.at, cluster, length, within);
  }

  const mapper: Mapper = {
    format: 'qcow2',
    size,
    allocationUnit: extendedL2 ? subclusterSize : clusterSize,
    async runAt(offset, max) {
      if (extendedL2) return extendedRun(offset, max);
      const cluster = Math.floor(offset / clusterSize);
      const within = offset - cluster * clusterSize;
      const length = Math.min(max, clusterSize - within);
      const { hi, lo, at } = await entry(cluster);
      return classify(hi, lo, at, cluster, length, within);
    },
    async *zeroRanges() {
      const clusters = Math.ceil(size / clusterSize);
      for (let t = 0; t < l1Need; t++) {
        const first = t * l2PerTable;
        const count = Math.min(l2PerTable, clusters - first);
        if (l2Offsets[t] === 0) {
          yield [first * clusterSize, count * clusterSize, true];
          continue;
        }
        // One table load, then a synchronous scan of its entries.
        const l2Off = l2Offsets[t]!;
        const table = await loadL2(l2Off);
        const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
        for (let c = first; c < first + count; c++) {
          const i = (c - first) * entryBytes;
          if (extendedL2) {
            const e = {
              hi: view.getUint32(i),
              lo: view.getUint32(i + 4),
              at: l2Off + i,
              zero: view.getUint32(i + 8),
              alloc: view.getUint32(i + 12),
            };
            if (e.hi & 0x40000000) continue; // compressed: whole cluster of data
            for (let sc = 0; sc < 32; sc++) {
              const kind = subcluster(e, c, sc);
              if (kind !== 'data') {
                yield [c * clusterSize + sc * subclusterSize, subclusterSize, kind === 'absent'];
              }
            }
            continue;
          }
          const run = classify(
            view.getUint32(i),
            view.getUint32(i + 4),
            l2Off + i,
            c,
            clusterSize,
            0,
          );
          if (run.kind === 'zero' || run.kind === 'absent') {
            yield [c * clusterSize, clusterSize, run.kind === 'absent'];
          }
        }
      }
    },
  };
  return { mapper, header, parent };
}
