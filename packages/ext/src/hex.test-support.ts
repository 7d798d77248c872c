// Test support (not exported by the package): inline hex dumps of single structures.

/**
 * Bytes from rows like `'0f0: 22 22 33 33'` (offset, then hex bytes); offsets not listed are
 * zero. The dumps come from real `mke2fs` output, so they are what the kernel writes.
 */
export function fromHexRows(size: number, rows: string[]): Uint8Array {
  const out = new Uint8Array(size);
  for (const row of rows) {
    const [offset, data] = row.split(':') as [string, string];
    const bytes = data.trim().split(/\s+/);
    bytes.forEach((b, i) => {
      out[Number.parseInt(offset, 16) + i] = Number.parseInt(b, 16);
    });
  }
  return out;
}

export function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

export function setU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/**
 * Superblock of `mke2fs -t ext4 -b 1024 -U 01234567-89ab-cdef-0123-456789abcdef -L testfs` on
 * an 8 MiB file (e2fsprogs 1.47.0, E2FSPROGS_FAKE_TIME=1700000000). dumpe2fs: 8192 blocks, one
 * group, features has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg
 * sparse_super large_file huge_file dir_nlink extra_isize metadata_csum, checksum 0x10299cd6.
 */
export const EXT4_1K_SUPERBLOCK = [
  '000: 00 08 00 00 00 20 00 00 99 01 00 00 ae 19 00 00',
  '010: f5 07 00 00 01 00 00 00 00 00 00 00 00 00 00 00',
  '020: 00 20 00 00 00 20 00 00 00 08 00 00 00 00 00 00',
  '030: 00 f1 53 65 00 00 ff ff 53 ef 01 00 01 00 00 00',
  '040: 00 f1 53 65 00 00 00 00 00 00 00 00 01 00 00 00',
  '050: 00 00 00 00 0b 00 00 00 00 01 00 00 3c 00 00 00',
  '060: c2 02 00 00 6b 04 00 00 01 23 45 67 89 ab cd ef',
  '070: 01 23 45 67 89 ab cd ef 74 65 73 74 66 73 00 00',
  '0c0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 3f 00',
  '0e0: 08 00 00 00 00 00 00 00 00 00 00 00 11 11 11 11',
  '0f0: 22 22 33 33 44 44 55 55 55 55 55 55 01 01 40 00',
  '100: 0c 00 00 00 00 00 00 00 00 f1 53 65 0a f3 03 00',
  '110: 04 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00',
  '120: 50 00 00 00 02 00 00 00 0f 00 00 00 53 00 00 00',
  '130: 11 00 00 00 ef 03 00 00 63 02 00 00 00 00 00 00',
  '140: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 10 00',
  '150: 00 00 00 00 00 00 00 00 00 00 00 00 20 00 20 00',
  '160: 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
  '170: 00 00 00 00 04 01 00 00 54 00 00 00 00 00 00 00',
  '240: 00 00 00 00 00 00 00 00 44 06 00 00 00 00 00 00',
  '3f0: 00 00 00 00 00 00 00 00 00 00 00 00 d6 9c 29 10',
];

/** Group 0's 64-byte descriptor of the same filesystem: csum 0x5d25, block bitmap csum 0x4bda601a. */
export const EXT4_1K_GROUP0 = [
  '000: 42 00 00 00 52 00 00 00 62 00 00 00 ae 19 f5 07',
  '010: 02 00 04 00 00 00 00 00 1a 60 3b d8 f5 07 25 5d',
  '030: 00 00 00 00 00 00 00 00 da 4b 4d 55 00 00 00 00',
];

/**
 * Two 32-byte descriptors of `mke2fs -t ext4 -O ^metadata_csum,uninit_bg,^64bit -b 1024` (same
 * UUID) on 16 MiB: crc16 checksums 0x2d4b (group 0) and 0x4a55 (group 1).
 */
export const UNINIT_BG_GROUPS = [
  '000: 42 00 00 00 44 00 00 00 46 00 00 00 ad 1b f5 07',
  '010: 02 00 04 00 00 00 00 00 00 00 00 00 f5 07 4b 2d',
  '020: 43 00 00 00 45 00 00 00 46 02 00 00 be 1b 00 08',
  '030: 00 00 05 00 00 00 00 00 00 00 00 00 00 08 55 4a',
];

export const TEST_UUID = fromHexRows(16, ['000: 01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef']);

/** XOR byte `at` of `b` with `mask` (corrupts it). */
export function flip(b: Uint8Array, at: number, mask = 0xff): void {
  b[at] = (b[at] ?? 0) ^ mask;
}
