import { describe, expect, it } from 'vitest';
import { INCOMPAT, RO_COMPAT } from './features.js';
import { EXT4_1K_SUPERBLOCK, flip, fromHexRows, setU16, setU32 } from './hex.test-support.js';
import type { ExtReason } from './reasons.js';
import {
  checksumSeed,
  geometry,
  hasExtMagic,
  parseSuperblock,
  superblockChecksum,
} from './superblock.js';

const sample = (): Uint8Array => fromHexRows(1024, EXT4_1K_SUPERBLOCK);

function code(fn: () => unknown): { code?: string; reason?: string; offset?: number } {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; reason?: string };
  }
  return {};
}

describe('parseSuperblock', () => {
  it('reads the fields of a real ext4 superblock', () => {
    const sb = parseSuperblock(sample());
    expect(sb.blocksCount).toBe(8192);
    expect(sb.inodesCount).toBe(2048);
    expect(sb.firstDataBlock).toBe(1);
    expect(sb.blockSize).toBe(1024);
    expect(sb.clusterSize).toBe(1024);
    expect(sb.clusterRatio).toBe(1);
    expect(sb.blocksPerGroup).toBe(8192);
    expect(sb.inodesPerGroup).toBe(2048);
    expect(sb.inodeSize).toBe(256);
    expect(sb.descSize).toBe(64);
    expect(sb.reservedGdtBlocks).toBe(63);
    expect(sb.volumeName).toBe('testfs');
    expect(sb.journalInum).toBe(8);
    expect(sb.logGroupsPerFlex).toBe(4);
    expect(sb.state).toBe(1);
    expect(sb.featureIncompat & INCOMPAT['64bit']).not.toBe(0);
    expect(sb.featureRoCompat & RO_COMPAT.metadata_csum).not.toBe(0);
    expect(sb.checksum).toBe(0x10299cd6);
  });

  it('computes the stored superblock checksum', () => {
    const bytes = sample();
    expect(superblockChecksum(bytes)).toBe(0x10299cd6);
    flip(bytes, 0x78, 1);
    expect(superblockChecksum(bytes)).not.toBe(0x10299cd6);
  });

  it('derives the checksum seed from the UUID unless metadata_csum_seed is set', () => {
    const bytes = sample();
    const seed = checksumSeed(parseSuperblock(bytes));
    setU32(
      bytes,
      0x60,
      (parseSuperblock(bytes).featureIncompat | INCOMPAT.metadata_csum_seed) >>> 0,
    );
    setU32(bytes, 0x270, 0x12345678);
    expect(checksumSeed(parseSuperblock(bytes))).toBe(0x12345678);
    expect(seed).not.toBe(0x12345678);
  });

  it('reads the 64-bit block count only under 64bit', () => {
    const bytes = sample();
    setU32(bytes, 0x150, 1);
    expect(parseSuperblock(bytes).blocksCount).toBe(2 ** 32 + 8192);
    setU32(bytes, 0x60, parseSuperblock(bytes).featureIncompat & ~INCOMPAT['64bit']);
    const sb = parseSuperblock(bytes);
    expect(sb.blocksCount).toBe(8192);
    expect(sb.descSize).toBe(32);
  });

  it('has a cheap magic test', () => {
    expect(hasExtMagic(sample())).toBe(true);
    expect(hasExtMagic(new Uint8Array(1024))).toBe(false);
    expect(hasExtMagic(new Uint8Array(10))).toBe(false);
  });

  const cases: Array<[string, (b: Uint8Array) => void, string, ExtReason]> = [
    ['bad magic', (b) => setU16(b, 0x38, 0xef54), 'CORRUPT', 'bad-magic'],
    ['block size above 64 KiB', (b) => setU32(b, 0x18, 7), 'CORRUPT', 'bad-block-size'],
    ['huge log block size', (b) => setU32(b, 0x18, 0xffffffff), 'CORRUPT', 'bad-block-size'],
    ['cluster size != block size', (b) => setU32(b, 0x1c, 2), 'CORRUPT', 'bad-cluster-size'],
    ['zero blocks per group', (b) => setU32(b, 0x20, 0), 'CORRUPT', 'bad-group-size'],
    [
      'blocks per group above 8 × block size',
      (b) => setU32(b, 0x20, 8200),
      'CORRUPT',
      'bad-group-size',
    ],
    [
      'blocks per group not a multiple of 8',
      (b) => setU32(b, 0x20, 4001),
      'CORRUPT',
      'bad-group-size',
    ],
    ['zero inodes per group', (b) => setU32(b, 0x28, 0), 'CORRUPT', 'bad-inodes-per-group'],
    ['inode size not a power of 2', (b) => setU16(b, 0x58, 300), 'CORRUPT', 'bad-inode-size'],
    [
      'first data block 0 with 1 KiB blocks',
      (b) => setU32(b, 0x14, 0),
      'CORRUPT',
      'bad-first-data-block',
    ],
    ['zero block count', (b) => setU32(b, 0x4, 0), 'CORRUPT', 'bad-block-count'],
    ['descriptor size 48', (b) => setU16(b, 0xfe, 48), 'CORRUPT', 'bad-desc-size'],
    ['descriptor size 2048', (b) => setU16(b, 0xfe, 2048), 'CORRUPT', 'bad-desc-size'],
    [
      'reserved GDT blocks above block size / 4',
      (b) => setU16(b, 0xce, 257),
      'CORRUPT',
      'bad-reserved-gdt',
    ],
    ['revision 2', (b) => setU32(b, 0x4c, 2), 'UNSUPPORTED', 'revision'],
    [
      'checksum type 2',
      (b) => {
        b[0x175] = 2;
      },
      'UNSUPPORTED',
      'checksum-type',
    ],
    ['more than 2^53 bytes', (b) => setU32(b, 0x150, 0x01000000), 'UNSUPPORTED', 'too-large'],
  ];
  for (const [name, patch, wantCode, wantReason] of cases) {
    it(`rejects ${name}`, () => {
      const bytes = sample();
      patch(bytes);
      const e = code(() => parseSuperblock(bytes));
      expect(e.code).toBe(wantCode);
      expect(e.reason).toBe(wantReason);
    });
  }

  it('rejects a short buffer with a CorruptError, not a RangeError', () => {
    const e = code(() => parseSuperblock(sample().subarray(0, 100)));
    expect(e.code).toBe('CORRUPT');
    expect(e.reason).toBe('truncated');
  });

  it('ignores feature fields of a revision 0 superblock', () => {
    const bytes = sample();
    setU32(bytes, 0x4c, 0);
    const sb = parseSuperblock(bytes);
    expect(sb.featureIncompat).toBe(0);
    expect(sb.inodeSize).toBe(128);
    expect(sb.descSize).toBe(32);
  });

  it('accepts bigalloc cluster geometry and rejects inconsistent group sizes', () => {
    const bytes = sample();
    setU32(bytes, 0x64, parseSuperblock(bytes).featureRoCompat | RO_COMPAT.bigalloc);
    setU32(bytes, 0x14, 0); // bigalloc starts at block 0
    setU32(bytes, 0x1c, 4); // 16 KiB clusters: ratio 16
    setU32(bytes, 0x24, 512); // clusters per group
    setU32(bytes, 0x20, 8192); // blocks per group = 512 × 16
    const sb = parseSuperblock(bytes);
    expect(sb.clusterRatio).toBe(16);
    expect(sb.clusterSize).toBe(16384);
    expect(sb.clustersPerGroup).toBe(512);
    setU32(bytes, 0x20, 8184);
    expect(code(() => parseSuperblock(bytes)).reason).toBe('bad-group-size');
  });
});

describe('geometry', () => {
  it('counts groups and descriptor blocks', () => {
    const geo = geometry(parseSuperblock(sample()));
    expect(geo).toEqual({ groupCount: 1, descPerBlock: 16, descBlocks: 1, inodeTableBlocks: 512 });
  });

  it('rejects an inode count that disagrees with the group count', () => {
    const bytes = sample();
    setU32(bytes, 0x4, 8194); // one more group, same inode count
    const e = code(() => geometry(parseSuperblock(bytes)));
    expect(e.code).toBe('CORRUPT');
    expect(e.reason).toBe('bad-inode-count');
  });

  it('rejects s_first_meta_bg beyond the descriptor table', () => {
    const bytes = sample();
    setU32(bytes, 0x60, parseSuperblock(bytes).featureIncompat | INCOMPAT.meta_bg);
    setU32(bytes, 0x104, 2);
    expect(code(() => geometry(parseSuperblock(bytes))).reason).toBe('bad-first-meta-bg');
  });
});
