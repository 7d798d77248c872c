import { CorruptError } from '@diskube/core';

// Sources: kernel Documentation/filesystems/ext4/mmp.rst (struct mmp_struct), fs/ext4/mmp.c,
// e2fsprogs lib/ext2fs/mmp.c and ext2_fs.h (EXT4_MMP_MAGIC, EXT4_MMP_SEQ_*).

const STRUCTURE = 'ext4 MMP block';
export const MMP_MAGIC = 0x004d4d50;
/** mmp_seq of a filesystem nobody has mounted. */
export const MMP_SEQ_CLEAN = 0xff4d4d50;
/** mmp_seq while e2fsck runs. */
export const MMP_SEQ_FSCK = 0xe24d4d50;

export interface Mmp {
  seq: number;
  /** mmp_nodename: who holds it, for messages. */
  nodeName: string;
}

/** Parse the start of an MMP block: magic (0x0), sequence (0x4), node name (0x10, 64 bytes). */
export function parseMmp(bytes: Uint8Array, offset = 0): Mmp {
  if (bytes.length < 0x50) {
    throw new CorruptError('MMP block is short', { structure: STRUCTURE, offset, reason: 'short' });
  }
  const u32 = (o: number): number =>
    (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0;
  const mmp_magic = u32(0x0);
  if (mmp_magic !== MMP_MAGIC) {
    throw new CorruptError(`bad MMP magic 0x${mmp_magic.toString(16)}`, {
      structure: STRUCTURE,
      offset,
      reason: 'bad-magic',
    });
  }
  let end = 0x10;
  while (end < 0x50 && bytes[end] !== 0) end++;
  return {
    seq: u32(0x4),
    nodeName: new TextDecoder().decode(bytes.subarray(0x10, end)),
  };
}
