import { type BlockSource, CorruptError, UnsupportedError } from '@diskube/core';
import { inflateRaw, unzstd } from './decompress.js';
import type { Mapper, Run } from './disk.js';
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

export async function openQcow2(
  file: BlockSource,
  cacheBytes: number,
): Promise<{ mapper: Mapper; header: Qcow2Header }> {
  const headerBytes = await readStructure(file, 0, Math.min(file.size, 4096), 'qcow2 header');
  const header = parseQcow2Header(headerBytes);
  const { clusterSize, clusterBits, size } = header;
  if (header.backingFileOffset !== 0) {
    const name = await readStructure(
      file,
      header.backingFileOffset,
      header.backingFileSize,
      'qcow2 backing file name',
    );
    const backingFile = new TextDecoder().decode(name);
    header.backingFile = backingFile;
    // Following the chain needs file access by name, which a pure package does not have; the
    // caller can convert the image with `qemu-img convert` first.
    throw new UnsupportedError(
      `qcow2 image has a backing file "${backingFile}"; images with backing files are not supported (flatten it with qemu-img convert)`,
      { structure: 'qcow2 header', offset: 0x08, reason: 'backing-file' },
    );
  }
  // The header extensions live in the first cluster (QEMU reads them up to the cluster's end).
  const headCluster =
    clusterSize <= headerBytes.length
      ? headerBytes.subarray(0, clusterSize)
      : await readStructure(file, 0, Math.min(file.size, clusterSize), 'qcow2 header cluster');
  const { dataFile } = parseQcow2Extensions(headCluster, header.headerLength);
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
  const l2PerTable = clusterSize / 8;
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

  async function entry(cluster: number): Promise<{ hi: number; lo: number; at: number }> {
    const l1Index = Math.floor(cluster / l2PerTable);
    const l2Off = l2Offsets[l1Index]!;
    if (l2Off === 0) return { hi: 0, lo: 0, at: 0 };
    const table = await loadL2(l2Off);
    const i = (cluster % l2PerTable) * 8;
    const hi = (table[i]! << 24) | (table[i + 1]! << 16) | (table[i + 2]! << 8) | table[i + 3]!;
    const lo = (table[i + 4]! << 24) | (table[i + 5]! << 16) | (table[i + 6]! << 8) | table[i + 7]!;
    return { hi: hi >>> 0, lo: lo >>> 0, at: l2Off + i };
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
    if (host === 0) return { kind: 'zero', length };
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

  const mapper: Mapper = {
    format: 'qcow2',
    size,
    allocationUnit: clusterSize,
    async runAt(offset, max) {
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
          yield [first * clusterSize, count * clusterSize];
          continue;
        }
        // One table load, then a synchronous scan of its entries.
        const l2Off = l2Offsets[t]!;
        const table = await loadL2(l2Off);
        const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
        for (let c = first; c < first + count; c++) {
          const i = (c - first) * 8;
          const run = classify(
            view.getUint32(i),
            view.getUint32(i + 4),
            l2Off + i,
            c,
            clusterSize,
            0,
          );
          if (run.kind === 'zero') yield [c * clusterSize, clusterSize];
        }
      }
    },
  };
  return { mapper, header };
}
