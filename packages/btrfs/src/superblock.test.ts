import { DiskubeError, FieldReader } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { ChunkMap, parseChunk } from './chunk.js';
import { chunkBytes, DEVICE, superblockBytes } from './hex.test-support.js';
import {
  checkSupported,
  parseSuperblock,
  parseSysChunkArray,
  superblockCsumOk,
} from './superblock.js';

/** What usedBlocks does with the superblock before walking trees. */
function readSuperblock(bytes: Uint8Array) {
  const sb = parseSuperblock(bytes);
  checkSupported(sb);
  return { ...sb, sysChunks: parseSysChunkArray(bytes, sb.sectorsize) };
}

function error(f: () => unknown): DiskubeError {
  try {
    f();
  } catch (e) {
    if (DiskubeError.isInstance(e)) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('parseSuperblock', () => {
  it('reads the fields and the bootstrap chunk', () => {
    const bytes = superblockBytes();
    expect(superblockCsumOk(bytes)).toBe(true);
    const sb = readSuperblock(bytes);
    expect(sb).toMatchObject({
      sectorsize: 4096,
      nodesize: 16384,
      devTotalBytes: DEVICE,
      chunkRoot: 0x1504000,
      root: 0x1d40000,
      label: 'label',
      devid: 1,
    });
    expect(sb.sysChunks).toEqual([
      expect.objectContaining({
        logical: 0x1500000,
        length: 0x800000,
        stripes: [
          { devid: 1, offset: 0x1500000 },
          { devid: 1, offset: 0x1d00000 },
        ],
      }),
    ]);
  });

  it('probe-level parsing still recognises a btrfs it cannot read', () => {
    const sb = parseSuperblock(superblockBytes((v) => v.setUint16(0xc4, 1, true)));
    expect(sb.csumType).toBe(1);
    expect(sb.label).toBe('label');
  });

  it('a changed byte fails the checksum', () => {
    const bytes = superblockBytes();
    bytes[0x200]! ^= 1;
    expect(superblockCsumOk(bytes)).toBe(false);
  });

  it('refuses bad fields with their reason and absolute offset', () => {
    const cases: Array<[(v: DataView) => void, string, string, number]> = [
      [(v) => v.setUint8(0x40, 0), 'CORRUPT', 'bad-magic', 0x40],
      [(v) => v.setBigUint64(0x30, 0x4000000n, true), 'CORRUPT', 'bad-bytenr', 0x30],
      [(v) => v.setUint16(0xc4, 2, true), 'UNSUPPORTED', 'csum-type', 0xc4],
      [(v) => v.setBigUint64(0xbc, 1n << 12n, true), 'UNSUPPORTED', 'unknown-feature', 0xbc],
      [(v) => v.setBigUint64(0xb4, 1n << 4n, true), 'UNSUPPORTED', 'unknown-feature', 0xb4],
      [(v) => v.setUint32(0x90, 3000, true), 'CORRUPT', 'bad-sector-size', 0x90],
      [(v) => v.setUint32(0x94, 2048, true), 'CORRUPT', 'bad-node-size', 0x94],
      [(v) => v.setBigUint64(0x88, 3n, true), 'UNSUPPORTED', 'multi-device', 0x88],
      [(v) => v.setBigUint64(0xd1, 1n << 20n, true), 'CORRUPT', 'bad-total-bytes', 0xd1],
      [(v) => v.setBigUint64(0x70, 1n << 30n, true), 'CORRUPT', 'bad-total-bytes', 0x70],
      [(v) => v.setUint32(0xa0, 4000, true), 'CORRUPT', 'bad-sys-array', 0xa0],
      [(v) => v.setUint8(0x333, 216), 'CORRUPT', 'bad-sys-array', 0x32b],
      [
        (v) => v.setBigUint64(0x32b + 17 + 0x18, 0x1n, true),
        'CORRUPT',
        'bad-sys-array',
        0x32b + 17 + 0x18,
      ],
      [
        (v) => v.setBigUint64(0x32b + 17 + 0x18, 0x12n, true),
        'UNSUPPORTED',
        'profile',
        0x32b + 17 + 0x18,
      ],
      [(v) => v.setBigUint64(0x70, 1n << 60n, true), 'CORRUPT', 'too-large', 0x70],
    ];
    for (const [patch, code, reason, at] of cases) {
      expect(
        error(() => readSuperblock(superblockBytes(patch))),
        reason,
      ).toMatchObject({
        code,
        reason,
        offset: 0x10000 + at,
      });
    }
  });
});

describe('chunks', () => {
  const parse = (b: Uint8Array, logical = 0x1000000) =>
    parseChunk(new FieldReader(b, 'btrfs chunk item', 0x5000), logical, 4096, false);

  it('SINGLE has one stripe, DUP two; other stripe counts are CORRUPT', () => {
    expect(parse(chunkBytes(0x800000, 0x1n, [0x100000])).stripes).toHaveLength(1);
    expect(parse(chunkBytes(0x800000, 0x24n, [0x100000, 0x900000])).stripes).toHaveLength(2);
    expect(error(() => parse(chunkBytes(0x800000, 0x24n, [0x100000])))).toMatchObject({
      reason: 'bad-chunk',
      offset: 0x5000 + 0x2c,
    });
    expect(error(() => parse(chunkBytes(0x800000, 0x1n, [0x100000]), 0x1000001))).toMatchObject({
      reason: 'bad-chunk',
    });
  });

  it('the map refuses overlaps, stripes off the device or on another device, and finds chunks', () => {
    const a = parse(chunkBytes(0x800000, 0x1n, [0x100000]), 0x1000000);
    const b = parse(chunkBytes(0x800000, 0x24n, [0x900000, 0x1100000]), 0x1800000);
    const map = new ChunkMap([b, a], 1, DEVICE, 4096);
    expect(map.find(0x1000000)).toBe(a);
    expect(map.find(0x1ffffff)).toBe(b);
    expect(map.find(0x2000000)).toBeUndefined();
    const c = parse(chunkBytes(0x800000, 0x1n, [0x1000000]), 0x1400000);
    expect(error(() => new ChunkMap([a, c], 1, DEVICE, 4096))).toMatchObject({
      reason: 'chunk-overlap',
    });
    const d = parse(chunkBytes(0x800000, 0x1n, [0x500000]), 0x3000000);
    expect(error(() => new ChunkMap([a, d], 1, DEVICE, 4096))).toMatchObject({
      reason: 'chunk-overlap',
    });
    const off = parse(chunkBytes(0x800000, 0x1n, [DEVICE - 0x1000]), 0x3000000);
    expect(error(() => new ChunkMap([off], 1, DEVICE, 4096))).toMatchObject({
      reason: 'out-of-range',
    });
    const other = parse(chunkBytes(0x800000, 0x1n, [0x100000], 2), 0x3000000);
    expect(error(() => new ChunkMap([other], 1, DEVICE, 4096))).toMatchObject({
      code: 'UNSUPPORTED',
      reason: 'multi-device',
    });
  });
});
