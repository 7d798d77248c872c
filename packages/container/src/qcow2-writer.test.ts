import { hasErrorCode, memorySource } from '@diskube/core';
import { deflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { openContainer } from './container.js';
import { random } from './images.test-support.js';
import { parseQcow2Header } from './qcow2-header.js';
import {
  encodeQcow2CompressedEntry,
  encodeQcow2Header,
  encodeQcow2L1Table,
  encodeQcow2L2Table,
  encodeQcow2RefcountBlock,
  encodeQcow2RefcountTable,
  planQcow2Metadata,
  qcow2WriterGeometry,
} from './qcow2-writer.js';

/** Assemble a whole qcow2 image in memory the way the restore target lays it out. */
function assemble(disk: Uint8Array, clusterBits: number): Uint8Array {
  const g = qcow2WriterGeometry(disk.length, clusterBits);
  const cs = g.clusterSize;
  const host = new Array<number>(g.guestClusters).fill(0);
  const data: Uint8Array[] = [];
  for (let c = 0; c < g.guestClusters; c++) {
    const piece = disk.subarray(c * cs, Math.min(disk.length, (c + 1) * cs));
    if (piece.some((b) => b !== 0)) {
      data.push(piece);
      host[c] = data.length; // cluster 0 is the header
    }
  }
  const tables: number[] = [];
  for (let t = 0; t < g.l1Size; t++)
    if (host.slice(t * g.l2Entries, (t + 1) * g.l2Entries).some((h) => h !== 0)) tables.push(t);
  const layout = planQcow2Metadata(g, data.length, tables.length);
  const out = new Uint8Array(layout.totalClusters * cs);
  out.set(encodeQcow2Header(g, layout), 0);
  for (const [i, piece] of data.entries()) out.set(piece, (i + 1) * cs);
  const l2Offsets = new Array<number>(g.l1Size).fill(0);
  tables.forEach((t, i) => {
    l2Offsets[t] = layout.l2Offset + i * cs;
    out.set(
      encodeQcow2L2Table(g, host.slice(t * g.l2Entries, (t + 1) * g.l2Entries)),
      l2Offsets[t]!,
    );
  });
  out.set(encodeQcow2L1Table(g, layout, l2Offsets), layout.l1Offset);
  for (let b = 0; b < layout.refcountBlocks; b++)
    out.set(encodeQcow2RefcountBlock(g, layout, b), layout.refcountBlockOffset + b * cs);
  out.set(encodeQcow2RefcountTable(g, layout), layout.refcountTableOffset);
  return out;
}

/** Like `assemble`, every data cluster deflated and packed byte by byte. */
function assembleCompressed(disk: Uint8Array, clusterBits: number): Uint8Array {
  const g = qcow2WriterGeometry(disk.length, clusterBits);
  const cs = g.clusterSize;
  const data = new Uint8Array(disk.length * 2 + cs);
  const refcounts: number[] = [];
  const entries = new Map<number, { hi: number; lo: number }>();
  let pos = cs;
  for (let c = 0; c < g.guestClusters; c++) {
    const piece = new Uint8Array(cs);
    piece.set(disk.subarray(c * cs, Math.min(disk.length, (c + 1) * cs)));
    if (piece.every((b) => b === 0)) continue;
    const z = deflateSync(piece);
    data.set(z, pos);
    const e = encodeQcow2CompressedEntry(g, pos, z.length);
    entries.set(c, e);
    for (let h = Math.floor(pos / cs); h <= Math.floor((pos + e.storedLength - 1) / cs); h++)
      refcounts[h - 1] = (refcounts[h - 1] ?? 0) + 1;
    pos += z.length;
  }
  const dataClusters = Math.ceil(pos / cs) - 1;
  const layout = planQcow2Metadata(g, dataClusters, 1);
  expect(g.l1Size).toBe(1);
  const out = new Uint8Array(layout.totalClusters * cs);
  out.set(data.subarray(0, pos));
  out.set(encodeQcow2Header(g, layout), 0);
  const l2 = encodeQcow2L2Table(g, []);
  const view = new DataView(l2.buffer);
  for (const [c, e] of entries) {
    view.setUint32(c * 8, e.hi);
    view.setUint32(c * 8 + 4, e.lo);
  }
  out.set(l2, layout.l2Offset);
  out.set(encodeQcow2L1Table(g, layout, [layout.l2Offset]), layout.l1Offset);
  for (let b = 0; b < layout.refcountBlocks; b++)
    out.set(encodeQcow2RefcountBlock(g, layout, b, refcounts), layout.refcountBlockOffset + b * cs);
  out.set(encodeQcow2RefcountTable(g, layout), layout.refcountTableOffset);
  return out;
}

describe('qcow2 writer encoders', () => {
  it('rounds the virtual size up to whole sectors and sizes L1 for it', () => {
    const g = qcow2WriterGeometry(10 * 2 ** 20 + 1000);
    expect(g.virtualSize).toBe(10 * 2 ** 20 + 1024);
    expect(g.clusterSize).toBe(65536);
    expect(g.guestClusters).toBe(161);
    expect(g.l1Size).toBe(1);
    expect(qcow2WriterGeometry(2 ** 40).l1Size).toBe(2048);
    expect(qcow2WriterGeometry(0).l1Size).toBe(0);
  });

  it('refuses bad cluster sizes and sizes', () => {
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return hasErrorCode(e, 'INVALID_ARGUMENT') ? (e as { reason: string }).reason : String(e);
      }
      return 'no error';
    };
    expect(reason(() => qcow2WriterGeometry(1024, 8))).toBe('cluster-size');
    expect(reason(() => qcow2WriterGeometry(1024, 22))).toBe('cluster-size');
    expect(reason(() => qcow2WriterGeometry(-1))).toBe('size');
    // 512-byte clusters: 64 entries per L2, a 2^40-byte disk needs 2^25 L1 entries (256 MiB).
    expect(reason(() => qcow2WriterGeometry(2 ** 40, 9))).toBe('size');
  });

  it('the header parses back with our reader and names every table', () => {
    const g = qcow2WriterGeometry(64 * 2 ** 20);
    const layout = planQcow2Metadata(g, 100, 1);
    const bytes = encodeQcow2Header(g, layout);
    expect(bytes.length).toBe(65536);
    const h = parseQcow2Header(bytes);
    expect(h).toMatchObject({
      version: 3,
      clusterBits: 16,
      size: 64 * 2 ** 20,
      l1Size: 1,
      l1TableOffset: layout.l1Offset,
      compressionType: 'deflate',
      dirty: false,
      backingFileOffset: 0,
    });
    const view = new DataView(bytes.buffer);
    expect(view.getBigUint64(0x30)).toBe(BigInt(layout.refcountTableOffset));
    expect(view.getUint32(0x38)).toBe(layout.refcountTableClusters);
    expect(view.getUint32(0x60)).toBe(4); // refcount_order
    expect(view.getUint32(0x64)).toBe(104); // header_length
    expect(view.getBigUint64(0x48)).toBe(0n); // no incompatible features
    // The header extension area right after the header is the end marker (type 0).
    expect(view.getUint32(104)).toBe(0);
  });

  it('places metadata after the data and counts refcount blocks at their fixed point', () => {
    const g = qcow2WriterGeometry(64 * 2 ** 20);
    const small = planQcow2Metadata(g, 10, 1);
    expect(small).toEqual({
      l2Offset: 11 * 65536,
      l2Tables: 1,
      l1Offset: 12 * 65536,
      l1Clusters: 1,
      refcountBlockOffset: 13 * 65536,
      refcountBlocks: 1,
      refcountTableOffset: 14 * 65536,
      refcountTableClusters: 1,
      totalClusters: 15,
    });
    // One refcount block covers 32768 clusters; data that just fills it pushes the metadata
    // (and the block itself) into a second block.
    const g2 = qcow2WriterGeometry(4 * 2 ** 40);
    for (const data of [32768 - 4 - 64, 32768 - 3 - 64, 32768 * 600]) {
      const l2 = Math.ceil(data / g2.l2Entries);
      const layout = planQcow2Metadata(g2, data, l2);
      const { totalClusters, refcountBlocks, refcountTableClusters, l1Clusters } = layout;
      expect(totalClusters).toBe(
        1 + data + l2 + l1Clusters + refcountBlocks + refcountTableClusters,
      );
      expect(refcountBlocks).toBe(Math.ceil(totalClusters / 32768));
      expect(refcountTableClusters).toBe(Math.ceil((refcountBlocks * 8) / 65536));
    }
  });

  it('L1/L2 entries carry the host offset and COPIED, refcounts are 1 up to the end', () => {
    const g = qcow2WriterGeometry(2 ** 33);
    const host = new Array<number>(g.l2Entries).fill(0);
    host[0] = 1;
    host[5] = 2 ** 30; // host offset 2^46: needs the high word
    const l2 = new DataView(encodeQcow2L2Table(g, host).buffer);
    expect(l2.getBigUint64(0)).toBe((1n << 63n) | 65536n);
    expect(l2.getBigUint64(8)).toBe(0n);
    expect(l2.getBigUint64(40)).toBe((1n << 63n) | (1n << 46n));
    const layout = planQcow2Metadata(g, 40000, 1);
    const l1 = new DataView(encodeQcow2L1Table(g, layout, [0, layout.l2Offset]).buffer);
    expect(l1.getBigUint64(0)).toBe(0n);
    expect(l1.getBigUint64(8)).toBe((1n << 63n) | BigInt(layout.l2Offset));
    expect(layout.refcountBlocks).toBe(2);
    const b1 = new DataView(encodeQcow2RefcountBlock(g, layout, 1).buffer);
    const last = layout.totalClusters - 32768 - 1;
    expect(b1.getUint16(last * 2)).toBe(1);
    expect(b1.getUint16((last + 1) * 2)).toBe(0);
    const table = new DataView(encodeQcow2RefcountTable(g, layout).buffer);
    expect(table.getBigUint64(8)).toBe(BigInt(layout.refcountBlockOffset + 65536));
    expect(table.getBigUint64(16)).toBe(0n);
  });

  for (const [name, size, bits] of [
    ['64 KiB clusters, sector-multiple size', 3 * 2 ** 20 + 1536, 16],
    ['4 KiB clusters, several L2 tables, odd size', 5 * 2 ** 20 + 1000, 12],
  ] as const) {
    it(`an assembled image reads back identical through openContainer (${name})`, async () => {
      const disk = new Uint8Array(size);
      disk.set(random(70000, 3), 100);
      disk.set(random(5000, 4), 2 ** 20 + 7);
      disk.set(random(size - 3 * 2 ** 20 - 10, 5), 3 * 2 ** 20);
      const image = assemble(disk, bits);
      const { format, disk: read } = await openContainer(memorySource(image));
      expect(format).toBe('qcow2');
      expect(read.size).toBe(Math.ceil(size / 512) * 512);
      const back = new Uint8Array(read.size);
      await read.read(0, back);
      expect(Buffer.compare(back.subarray(0, size), disk)).toBe(0);
      expect(back.subarray(size).every((b) => b === 0)).toBe(true);
      let unallocated = 0;
      for await (const [, length] of read.unallocatedRanges()) unallocated += length;
      expect(unallocated).toBeGreaterThan(0);
    });
  }

  it('compressed entries hold the byte offset and the extra sectors, without COPIED', () => {
    const g = qcow2WriterGeometry(2 ** 30);
    // 64 KiB clusters: x = 54. 1000 bytes at 0x10100 span sectors 0x80..0x82: 2 extra.
    const e = encodeQcow2CompressedEntry(g, 0x10100, 1000);
    const entry = (BigInt(e.hi) << 32n) | BigInt(e.lo);
    expect(entry >> 62n).toBe(1n); // bit 62 set, bit 63 (COPIED) clear
    expect(entry & ((1n << 54n) - 1n)).toBe(0x10100n);
    expect((entry >> 54n) & 0xffn).toBe(2n);
    expect(e.storedLength).toBe(3 * 512 - 0x100);
    const big = encodeQcow2CompressedEntry(g, 2 ** 40 + 512, 65536);
    expect((BigInt(big.hi) << 32n) | BigInt(big.lo)).toBe(
      (1n << 62n) | (127n << 54n) | (2n ** 40n + 512n),
    );
    expect(() => encodeQcow2CompressedEntry(g, 100, 10)).toThrow(); // inside the header cluster
    expect(() => encodeQcow2CompressedEntry(g, 2 ** 54, 10)).toThrow();
    expect(() => encodeQcow2CompressedEntry(g, 65536, 65537)).toThrow();
  });

  it('refcount blocks take per-cluster refcounts for the data area', () => {
    const g = qcow2WriterGeometry(2 ** 24);
    const layout = planQcow2Metadata(g, 3, 1);
    const block = new DataView(encodeQcow2RefcountBlock(g, layout, 0, [5, 2, 1]).buffer);
    expect([0, 1, 2, 3, 4, 5].map((i) => block.getUint16(i * 2))).toEqual([1, 5, 2, 1, 1, 1]);
    expect(() => encodeQcow2RefcountBlock(g, layout, 0, [0])).toThrow();
  });

  it('an assembled deflate-compressed image reads back identical through openContainer', async () => {
    const size = 2 * 2 ** 20 + 1536;
    const disk = new Uint8Array(size);
    disk.set(random(100000, 9), 300);
    for (let i = 2 ** 20; i < 2 ** 20 + 300000; i++) disk[i] = (i >> 4) & 0xff; // compressible
    disk.set(random(1000, 10), size - 1000);
    const image = assembleCompressed(disk, 16);
    expect(image.length).toBeLessThan(size);
    const { disk: read } = await openContainer(memorySource(image));
    const back = new Uint8Array(read.size);
    await read.read(0, back);
    expect(Buffer.compare(back, disk)).toBe(0);
  });
});
