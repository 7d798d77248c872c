import { crc32c, FieldReader } from '@diskube/core';
import type { BtrfsReason } from './reasons.js';

/** `struct btrfs_header`: csum, fsid, bytenr, flags, chunk_tree_uuid, generation, owner, nritems, level. */
export const HEADER_SIZE = 0x65;
/** `struct btrfs_item` (leaf): key, data offset, data size. */
const ITEM_SIZE = 25;
/** `struct btrfs_key_ptr` (node): key, blockptr, generation. */
const KEY_PTR_SIZE = 33;
/** BTRFS_MAX_LEVEL: levels 0 (leaf) to 7. */
export const MAX_LEVEL = 8;

export interface Key {
  objectid: bigint;
  type: number;
  offset: bigint;
}

export interface LeafItem {
  key: Key;
  /** Offset of the item (its key) in the node's bytes. */
  keyAt: number;
  /** Offset of the item's data in the node's bytes (relative to the node, not the header end). */
  dataAt: number;
  dataSize: number;
}

export interface KeyPtr {
  key: Key;
  blockptr: number;
  generation: number;
}

export interface Node {
  level: number;
  generation: number;
  owner: bigint;
  /** Level 0: the items; above: the child pointers. */
  items: LeafItem[];
  ptrs: KeyPtr[];
  /** A reader over the node's bytes (absolute offsets of its first copy). */
  f: FieldReader<BtrfsReason>;
}

export function compareKeys(a: Key, b: Key): number {
  if (a.objectid !== b.objectid) return a.objectid < b.objectid ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.offset !== b.offset) return a.offset < b.offset ? -1 : 1;
  return 0;
}

function readKey(f: FieldReader<BtrfsReason>, at: number): Key {
  return { objectid: f.u64leBig(at), type: f.u8(at + 8), offset: f.u64leBig(at + 9) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface NodeExpectation {
  /** Logical address the node was reached by (its header's bytenr must say so). */
  logical: number;
  level: number;
  /** Transaction id the parent pointer (or the superblock / root item) records. */
  generation: number;
  /** The uuid in every tree block header (fsid, or metadata_uuid). */
  uuid: Uint8Array;
}

// Sources: btrfs-progs kernel-shared/ctree.h `struct btrfs_header`, `struct btrfs_item`,
// `struct btrfs_key_ptr`, `struct btrfs_disk_key`; checks as the kernel's tree-checker.c does.
/**
 * One tree block (nodesize bytes at absolute `offset`): checksum (crc32c over 0x20..nodesize),
 * fsid, bytenr, level and generation against what pointed at it, item count and layout, key
 * order. Returns its items (leaf) or child pointers.
 */
export function parseNode(bytes: Uint8Array, offset: number, want: NodeExpectation): Node {
  const f = new FieldReader<BtrfsReason>(bytes, 'btrfs tree block', offset).need(HEADER_SIZE);
  const size = bytes.length;
  if (crc32c(f.slice(0x20, size - 0x20)) !== f.u32le(0x00)) {
    throw f.corrupt(`tree block ${want.logical}: checksum mismatch`, 0x00, 'checksum');
  }
  if (!sameBytes(f.slice(0x20, 16), want.uuid)) {
    throw f.corrupt(`tree block ${want.logical} belongs to another filesystem`, 0x20, 'bad-fsid');
  }
  const bytenr = f.u64le(0x30, 'bytenr');
  if (bytenr !== want.logical) {
    throw f.corrupt(`tree block at ${want.logical} says it is ${bytenr}`, 0x30, 'bad-bytenr');
  }
  const generation = f.u64le(0x50, 'generation');
  if (generation !== want.generation) {
    // The kernel's "parent transid verify failed": a stale or misdirected block.
    throw f.corrupt(
      `tree block ${want.logical}: generation ${generation}, expected ${want.generation}`,
      0x50,
      'bad-generation',
    );
  }
  const level = f.u8(0x64);
  if (level !== want.level) {
    throw f.corrupt(
      `tree block ${want.logical}: level ${level}, expected ${want.level}`,
      0x64,
      'bad-level',
    );
  }
  const nritems = f.u32le(0x60);
  const room = size - HEADER_SIZE;
  const items: LeafItem[] = [];
  const ptrs: KeyPtr[] = [];
  if (level === 0) {
    if (nritems * ITEM_SIZE > room) throw f.corrupt(`${nritems} items`, 0x60, 'bad-nritems');
    // Item data grows down from the end; each item's data must lie after the item array.
    const floor = nritems * ITEM_SIZE;
    for (let i = 0; i < nritems; i++) {
      const at = HEADER_SIZE + i * ITEM_SIZE;
      const key = readKey(f, at);
      const dataOffset = f.u32le(at + 17);
      const dataSize = f.u32le(at + 21);
      if (dataOffset < floor || dataOffset + dataSize > room) {
        throw f.corrupt(`item ${i} data at ${dataOffset}, ${dataSize} bytes`, at + 17, 'bad-item');
      }
      if (i > 0 && compareKeys(items[i - 1]!.key, key) >= 0) {
        throw f.corrupt(`item ${i} key out of order`, at, 'bad-key-order');
      }
      items.push({ key, keyAt: at, dataAt: HEADER_SIZE + dataOffset, dataSize });
    }
  } else {
    if (nritems === 0 || nritems * KEY_PTR_SIZE > room) {
      throw f.corrupt(`${nritems} key pointers`, 0x60, 'bad-nritems');
    }
    for (let i = 0; i < nritems; i++) {
      const at = HEADER_SIZE + i * KEY_PTR_SIZE;
      const key = readKey(f, at);
      if (i > 0 && compareKeys(ptrs[i - 1]!.key, key) >= 0) {
        throw f.corrupt(`key pointer ${i} out of order`, at, 'bad-key-order');
      }
      ptrs.push({
        key,
        blockptr: f.u64le(at + 17, 'blockptr'),
        generation: f.u64le(at + 25, 'generation'),
      });
    }
  }
  return { level, generation, owner: f.u64leBig(0x58), items, ptrs, f };
}

/** The first key of a node, or undefined for an empty leaf. */
export function firstKey(node: Node): Key | undefined {
  return node.level === 0 ? node.items[0]?.key : node.ptrs[0]?.key;
}
