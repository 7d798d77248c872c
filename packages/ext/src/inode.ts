import { FieldReader } from '@diskube/core';
import type { ExtReason } from './reasons.js';

// Sources: kernel Documentation/filesystems/ext4/inodes.rst (struct ext4_inode), fs/ext4/ext4.h
// (EXT4_*_FL, ext4_inode_is_fast_symlink in inode.c), e2fsprogs lib/ext2fs/ext2_fs.h.

/** i_flags bits the walk needs. */
export const EXT4_EXTENTS_FL = 0x80000;
export const EXT4_INLINE_DATA_FL = 0x10000000;

/** i_mode file types. */
const S_IFMT = 0xf000;
const S_IFREG = 0x8000;
const S_IFDIR = 0x4000;
const S_IFLNK = 0xa000;

/** Bytes of i_block: 15 32-bit entries (12 direct, IND, DIND, TIND) or an extent root. */
export const I_BLOCK_SIZE = 60;

/** What the cross-check walk needs from one inode. */
export interface Inode {
  mode: number;
  linksCount: number;
  /** i_size_lo, plus i_size_high << 32. */
  size: number;
  flags: number;
  /** i_file_acl_lo, plus l_i_file_acl_high << 32: the extended-attribute block, 0 for none. */
  fileAcl: number;
  /** Offset of i_block inside the inode (always 0x28). */
  blockAt: number;
}

/**
 * Parse the first 128 bytes of the inode at `bytes[at…]` (the part every inode size has).
 * `offset` is the source byte offset of `bytes[at]`.
 */
export function parseInode(bytes: Uint8Array, at: number, offset: number): Inode {
  const f = new FieldReader<ExtReason>(bytes, 'ext4 inode', offset - at);
  const i_size_high = f.u32le(at + 0x6c);
  return {
    mode: f.u16le(at + 0x0),
    linksCount: f.u16le(at + 0x1a),
    size: i_size_high * 2 ** 32 + f.u32le(at + 0x4),
    flags: f.u32le(at + 0x20),
    fileAcl: f.u16le(at + 0x76) * 2 ** 32 + f.u32le(at + 0x68),
    blockAt: 0x28,
  };
}

/**
 * Does `i_block` list blocks? Regular files, directories and symlinks do, except inline data
 * and fast symlinks (the target stored in i_block: size below 60 bytes, as the kernel's
 * ext4_inode_is_fast_symlink decides). Device nodes, FIFOs and sockets never do. Reserved
 * inodes (journal, resize, bad blocks, quota …) are walked by the caller whatever their mode.
 */
export function hasBlockList(inode: Inode): boolean {
  if ((inode.flags & EXT4_INLINE_DATA_FL) !== 0) return false;
  const type = inode.mode & S_IFMT;
  if (type === S_IFREG || type === S_IFDIR) return true;
  if (type === S_IFLNK) return !(inode.size > 0 && inode.size < I_BLOCK_SIZE);
  return false;
}
