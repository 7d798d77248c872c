import { describe, expect, it } from 'vitest';
import {
  BG_BLOCK_UNINIT,
  BG_INODE_UNINIT,
  blockBitmapChecksum,
  groupDescriptorChecksum,
  parseGroupDescriptor,
} from './group-descriptor.js';
import {
  EXT4_1K_GROUP0,
  EXT4_1K_SUPERBLOCK,
  flip,
  fromHexRows,
  TEST_UUID,
  UNINIT_BG_GROUPS,
} from './hex.test-support.js';
import type { ExtReason } from './reasons.js';
import { checksumSeed, parseSuperblock } from './superblock.js';

describe('parseGroupDescriptor', () => {
  it('reads a 64-byte descriptor', () => {
    const d = parseGroupDescriptor(fromHexRows(64, EXT4_1K_GROUP0), 0, 64);
    expect(d).toEqual({
      blockBitmap: 0x42,
      inodeBitmap: 0x52,
      inodeTable: 0x62,
      freeBlocksCount: 0x19ae,
      flags: 0x4,
      itableUnused: 0x7f5,
      blockBitmapCsum: 0x4bda601a,
      checksum: 0x5d25,
    });
  });

  it('uses the _hi halves only in descriptors of 64 bytes or more', () => {
    const bytes = fromHexRows(64, [...EXT4_1K_GROUP0, '020: 01 00 00 00 02 00 00 00 03 00 00 00']);
    const wide = parseGroupDescriptor(bytes, 0, 64);
    expect(wide.blockBitmap).toBe(2 ** 32 + 0x42);
    expect(wide.inodeBitmap).toBe(2 * 2 ** 32 + 0x52);
    expect(wide.inodeTable).toBe(3 * 2 ** 32 + 0x62);
    const narrow = parseGroupDescriptor(bytes, 0, 32);
    expect(narrow.blockBitmap).toBe(0x42);
    expect(narrow.blockBitmapCsum).toBe(0x601a);
  });

  it('reads the second of two 32-byte descriptors', () => {
    const d = parseGroupDescriptor(fromHexRows(64, UNINIT_BG_GROUPS), 32, 32);
    expect(d.blockBitmap).toBe(0x43);
    expect(d.inodeTable).toBe(0x246);
    expect(d.flags).toBe(BG_INODE_UNINIT | 0x4);
    expect(d.flags & BG_BLOCK_UNINIT).toBe(0);
  });

  it('rejects a descriptor that does not fit, with a CorruptError', () => {
    expect(() => parseGroupDescriptor(new Uint8Array(40), 16, 32, 2048)).toThrow(
      expect.objectContaining({
        code: 'CORRUPT',
        reason: 'truncated' satisfies ExtReason,
        offset: 2048,
      }),
    );
  });
});

describe('groupDescriptorChecksum', () => {
  it('computes the metadata_csum (crc32c) checksum', () => {
    const sb = parseSuperblock(fromHexRows(1024, EXT4_1K_SUPERBLOCK));
    const bytes = fromHexRows(64, EXT4_1K_GROUP0);
    const method = { metadataCsum: true, seed: checksumSeed(sb) } as const;
    expect(groupDescriptorChecksum(bytes, 0, 64, 0, method)).toBe(0x5d25);
    // The group number is part of the checksum.
    expect(groupDescriptorChecksum(bytes, 0, 64, 1, method)).not.toBe(0x5d25);
  });

  it('computes the uninit_bg (crc16) checksum', () => {
    const bytes = fromHexRows(64, UNINIT_BG_GROUPS);
    const method = { metadataCsum: false, uuid: TEST_UUID } as const;
    expect(groupDescriptorChecksum(bytes, 0, 32, 0, method)).toBe(0x2d4b);
    expect(groupDescriptorChecksum(bytes, 32, 32, 1, method)).toBe(0x4a55);
    flip(bytes, 33, 0x10);
    expect(groupDescriptorChecksum(bytes, 32, 32, 1, method)).not.toBe(0x4a55);
  });
});

describe('blockBitmapChecksum', () => {
  it('covers clustersPerGroup / 8 bytes and truncates for short descriptors', () => {
    const bitmap = new Uint8Array(1024).fill(0xff);
    const full = blockBitmapChecksum(bitmap, 0, 8192, 0x1234, 64);
    expect(blockBitmapChecksum(bitmap, 0, 8192, 0x1234, 32)).toBe(full & 0xffff);
    bitmap[1023] = 0;
    expect(blockBitmapChecksum(bitmap, 0, 8192, 0x1234, 64)).not.toBe(full);
    // Bytes past clustersPerGroup / 8 do not count.
    expect(blockBitmapChecksum(bitmap, 0, 4096, 0x1234, 64)).toBe(
      blockBitmapChecksum(new Uint8Array(512).fill(0xff), 0, 4096, 0x1234, 64),
    );
  });
});
