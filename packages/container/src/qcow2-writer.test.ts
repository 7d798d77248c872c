import { hasErrorCode } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { parseQcow2Extensions, parseQcow2Header } from './qcow2-header.js';
import {
  encodeQcow2CompressedEntry,
  encodeQcow2Header,
  encodeQcow2L1Table,
  encodeQcow2L2Table,
  encodeQcow2RefcountBlock,
  encodeQcow2RefcountTable,
  planQcow2Metadata,
  QCOW2_ZERO_CLUSTER,
  qcow2WriterGeometry,
} from './qcow2-writer.js';

// Field-level tests of the encoders; whole images written through createDiskWriter are
// tested in disk-writer.test.ts.

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

  it('an overlay header: format extension, end marker, then the name it points at', () => {
    const g = qcow2WriterGeometry(2 ** 20);
    const layout = planQcow2Metadata(g, 1, 1);
    const file = 'dir/base image €.qcow2';
    const name = new TextEncoder().encode(file); // stored as UTF-8, not terminated
    for (const [format, nameOffset] of [
      ['qcow2', 104 + 8 + 8 + 8], // 5 bytes padded to 8
      ['vhdx-abc', 104 + 8 + 8 + 8], // exactly 8
      [undefined, 104 + 8],
    ] as const) {
      const bytes = encodeQcow2Header(g, layout, { file, format });
      const h = parseQcow2Header(bytes);
      expect(h.backingFileOffset).toBe(nameOffset);
      expect(h.backingFileSize).toBe(name.length);
      expect(bytes.subarray(nameOffset, nameOffset + name.length)).toEqual(name);
      expect(parseQcow2Extensions(bytes, 104)).toEqual({
        dataFile: undefined,
        backingFormat: format,
      });
      const view = new DataView(bytes.buffer);
      expect(view.getBigUint64(nameOffset - 8)).toBe(0n); // the end-of-extensions marker
      if (format) expect(view.getUint32(104)).toBe(0xe2792aca);
      expect(bytes.subarray(nameOffset + name.length).every((b) => b === 0)).toBe(true);
    }
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
    host[7] = QCOW2_ZERO_CLUSTER;
    const zero = new DataView(encodeQcow2L2Table(g, host).buffer);
    expect(zero.getBigUint64(56)).toBe(1n); // bit 0 only: no host offset, no COPIED
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
});
