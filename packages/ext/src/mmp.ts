import { FieldReader } from '@diskube/core';
import type { ExtReason } from './reasons.js';

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
  const f = new FieldReader<ExtReason>(bytes, STRUCTURE, offset).need(0x50);
  const mmp_magic = f.u32le(0x0);
  if (mmp_magic !== MMP_MAGIC) {
    throw f.corrupt(`bad MMP magic 0x${mmp_magic.toString(16)}`, 0x0, 'bad-magic');
  }
  const name = f.slice(0x10, 0x40);
  const end = name.indexOf(0);
  return {
    seq: f.u32le(0x4),
    nodeName: new TextDecoder().decode(end < 0 ? name : name.subarray(0, end)),
  };
}
