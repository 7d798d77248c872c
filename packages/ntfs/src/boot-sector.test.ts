import { describe, expect, it } from 'vitest';
import { parseBootSector } from './boot-sector.js';
import { hex } from './hex.test-support.js';

// The first 0x54 bytes of a boot sector written by `mkntfs -Q -c 4096 -s 512` on a 16 MiB file.
const MKNTFS_16M = `
  eb52 904e 5446 5320 2020 2000 0208 0000
  0000 0000 00f8 0000 0000 0000 0000 0000
  0000 0000 8000 8000 ff7f 0000 0000 0000
  0400 0000 0000 0000 ff07 0000 0000 0000
  f600 0000 0100 0000 f3b2 0908 c4e2 0536`;

function sector(patch: Record<number, number> = {}): Uint8Array {
  const bytes = hex(MKNTFS_16M, 512);
  bytes[0x1fe] = 0x55;
  bytes[0x1ff] = 0xaa;
  for (const [off, value] of Object.entries(patch)) bytes[Number(off)] = value;
  return bytes;
}

function code(fn: () => unknown): [string, string] | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (error) {
    const e = error as { code: string; reason: string };
    return [e.code, e.reason];
  }
}

describe('parseBootSector', () => {
  it('decodes the fields of an mkntfs boot sector', () => {
    expect(parseBootSector(sector())).toEqual({
      bytesPerSector: 512,
      sectorsPerCluster: 8,
      clusterSize: 4096,
      totalSectors: 0x7fff,
      clusterCount: 4095,
      mftLcn: 4,
      mftMirrLcn: 0x7ff,
      mftRecordSize: 1024,
      indexRecordSize: 4096,
      serial: '3605e2c40809b2f3',
    });
  });

  it('decodes 2^(256 − v) sectors per cluster for clusters above 64 KiB', () => {
    // 0x80 = 128 sectors = 64 KiB, the largest plain value.
    expect(
      parseBootSector(sector({ 13: 0x80, 40: 0xff, 41: 0xff, 42: 0x0f, 48: 1, 56: 2 })).clusterSize,
    ).toBe(65536);
    // 0xF4 = 2^12 sectors of 512 bytes = 2 MiB.
    const big = parseBootSector(
      sector({ 13: 0xf4, 40: 0, 41: 0, 42: 0x10, 48: 1, 56: 2, 57: 0, 68: 0xf4 }),
    );
    expect(big.sectorsPerCluster).toBe(4096);
    expect(big.clusterSize).toBe(2 * 1024 * 1024);
    expect(big.clusterCount).toBe(0x100000 / 4096);
    // 0xF3 = 4 MiB: beyond what NTFS defines.
    expect(code(() => parseBootSector(sector({ 13: 0xf3, 42: 0x10, 48: 1, 56: 2 })))).toEqual([
      'UNSUPPORTED',
      'cluster-size',
    ]);
  });

  it('decodes signed clusters-per-record values', () => {
    // Positive: clusters. 2 × 512-byte clusters = 1024-byte records.
    const b = parseBootSector(sector({ 13: 1, 64: 2, 68: 8, 40: 0x00, 41: 0x10, 48: 4, 56: 5 }));
    expect(b.mftRecordSize).toBe(1024);
    expect(b.indexRecordSize).toBe(4096);
    // Negative: 2^|v| bytes; 0xF4 = −12 → 4096.
    expect(parseBootSector(sector({ 64: 0xf4 })).mftRecordSize).toBe(4096);
    expect(code(() => parseBootSector(sector({ 64: 0 })))).toEqual(['CORRUPT', 'bad-record-size']);
    expect(code(() => parseBootSector(sector({ 64: 0xf8 })))).toEqual([
      'CORRUPT',
      'bad-record-size',
    ]); // 256 B
    expect(code(() => parseBootSector(sector({ 64: 0x81 })))).toEqual([
      'CORRUPT',
      'bad-record-size',
    ]);
  });

  it('rejects bad signatures, geometry and truncation with stable reasons', () => {
    expect(code(() => parseBootSector(sector({ 3: 0x4d })))).toEqual(['CORRUPT', 'bad-magic']);
    expect(code(() => parseBootSector(sector({ 510: 0 })))).toEqual(['CORRUPT', 'bad-magic']);
    expect(code(() => parseBootSector(sector({ 11: 0, 12: 1 })))).toEqual([
      'CORRUPT',
      'bad-sector-size',
    ]); // 256
    expect(code(() => parseBootSector(sector({ 11: 0, 12: 0x20 })))).toEqual([
      'CORRUPT',
      'bad-sector-size',
    ]); // 8192
    expect(code(() => parseBootSector(sector({ 11: 0x00, 12: 0x03 })))).toEqual([
      'CORRUPT',
      'bad-sector-size',
    ]); // 768
    expect(code(() => parseBootSector(sector({ 13: 0 })))).toEqual(['CORRUPT', 'bad-cluster-size']);
    expect(code(() => parseBootSector(sector({ 13: 3 })))).toEqual(['CORRUPT', 'bad-cluster-size']);
    expect(code(() => parseBootSector(sector({ 40: 0, 41: 0 })))).toEqual(['CORRUPT', 'bad-size']);
    expect(code(() => parseBootSector(sector({ 48: 0xff, 49: 0x0f })))).toEqual([
      'CORRUPT',
      'out-of-range',
    ]);
    expect(code(() => parseBootSector(sector({ 47: 0x80 })))).toEqual(['CORRUPT', 'too-large']); // > 2^53
    expect(code(() => parseBootSector(sector().subarray(0, 511)))).toEqual([
      'CORRUPT',
      'truncated',
    ]);
  });

  it('carries the structure and offset in errors', () => {
    try {
      parseBootSector(sector({ 13: 3 }), 1_048_576);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({
        code: 'CORRUPT',
        structure: 'NTFS boot sector',
        offset: 1_048_576 + 0x0d,
      });
    }
  });
});
