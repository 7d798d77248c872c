import { CorruptError, type FieldReader, UnsupportedError } from '@diskube/core';
import type { BtrfsReason } from './reasons.js';

/** Block-group type bits (BTRFS_BLOCK_GROUP_*). */
export const BLOCK_GROUP = {
  data: 1n << 0n,
  system: 1n << 1n,
  metadata: 1n << 2n,
  raid0: 1n << 3n,
  raid1: 1n << 4n,
  dup: 1n << 5n,
  raid10: 1n << 6n,
  raid5: 1n << 7n,
  raid6: 1n << 8n,
  raid1c3: 1n << 9n,
  raid1c4: 1n << 10n,
} as const;
const KINDS = BLOCK_GROUP.data | BLOCK_GROUP.system | BLOCK_GROUP.metadata;
const KNOWN = (1n << 11n) - 1n;
const OTHER_PROFILES = KNOWN & ~KINDS & ~BLOCK_GROUP.dup;

/** One chunk: `length` bytes of logical space from `logical`, stored at each stripe's offset. */
export interface Chunk {
  logical: number;
  length: number;
  type: bigint;
  /** Physical byte offsets on the device, one per copy (1 for SINGLE, 2 for DUP). */
  stripes: Array<{ devid: number; offset: number }>;
  /** Bytes of the `btrfs_chunk` with its stripes. */
  itemSize: number;
  /** Absolute byte offset of the `btrfs_chunk` in the source, for errors. */
  at: number;
}

/** `data:single`, `metadata:dup` …: the kinds a chunk holds with its profile, for facts. */
export function profileNames(type: bigint): string[] {
  const profile = (type & BLOCK_GROUP.dup) !== 0n ? 'dup' : 'single';
  const out: string[] = [];
  if ((type & BLOCK_GROUP.data) !== 0n) out.push(`data:${profile}`);
  if ((type & BLOCK_GROUP.metadata) !== 0n) out.push(`metadata:${profile}`);
  if ((type & BLOCK_GROUP.system) !== 0n) out.push(`system:${profile}`);
  return out;
}

const CHUNK_HEADER = 48;
const STRIPE_SIZE = 32;

// Sources: btrfs-progs kernel-shared/uapi/btrfs_tree.h `struct btrfs_chunk`, `struct btrfs_stripe`.
/**
 * A `btrfs_chunk` at the start of `f` (from the sys_chunk_array or a CHUNK_ITEM), whose key
 * offset is `logical`. Only SINGLE and DUP on one device are supported; other profiles are
 * UNSUPPORTED. `system` requires the SYSTEM type (the sys_chunk_array holds only those).
 */
export function parseChunk(
  f: FieldReader<BtrfsReason>,
  logical: number,
  sectorsize: number,
  system: boolean,
): Chunk {
  f.need(CHUNK_HEADER);
  const length = f.u64le(0x00, 'chunk length');
  const stripe_len = f.u64le(0x10, 'stripe_len');
  const type = f.u64leBig(0x18);
  const num_stripes = f.u16le(0x2c);
  if (length === 0 || length % sectorsize !== 0 || logical % sectorsize !== 0) {
    throw f.corrupt(`chunk at ${logical} of ${length} bytes`, 0x00, 'bad-chunk');
  }
  if (!Number.isSafeInteger(logical + length)) {
    throw f.corrupt(`chunk at ${logical} of ${length} bytes`, 0x00, 'too-large');
  }
  if (stripe_len === 0 || (type & KINDS) === 0n || (type & ~KNOWN) !== 0n) {
    throw f.corrupt(
      `chunk type 0x${type.toString(16)}, stripe_len ${stripe_len}`,
      0x18,
      'bad-chunk',
    );
  }
  if (system && (type & BLOCK_GROUP.system) === 0n) {
    throw f.corrupt('a sys_chunk_array chunk that is not SYSTEM', 0x18, 'bad-sys-array');
  }
  if ((type & OTHER_PROFILES) !== 0n) {
    throw new UnsupportedError(
      `chunk profile 0x${(type & OTHER_PROFILES).toString(16)} (only SINGLE and DUP)`,
      { structure: f.structure, offset: f.offset + 0x18, reason: 'profile' },
    );
  }
  const want = (type & BLOCK_GROUP.dup) !== 0n ? 2 : 1;
  if (num_stripes !== want) {
    throw f.corrupt(`${num_stripes} stripes for a ${want}-copy chunk`, 0x2c, 'bad-chunk');
  }
  const itemSize = CHUNK_HEADER + num_stripes * STRIPE_SIZE;
  f.need(itemSize);
  const stripes: Chunk['stripes'] = [];
  for (let i = 0; i < num_stripes; i++) {
    const s = CHUNK_HEADER + i * STRIPE_SIZE;
    stripes.push({ devid: f.u64le(s, 'stripe devid'), offset: f.u64le(s + 8, 'stripe offset') });
  }
  return { logical, length, type, stripes, itemSize, at: f.offset };
}

/** Chunks sorted by logical address, checked against one device; logical → physical lookups. */
export class ChunkMap {
  readonly chunks: Chunk[];

  constructor(chunks: Chunk[], devid: number, deviceBytes: number, sectorsize: number) {
    this.chunks = [...chunks].sort((a, b) => a.logical - b.logical);
    const stripes: Array<{ offset: number; end: number; at: number }> = [];
    for (const [i, c] of this.chunks.entries()) {
      const prev = this.chunks[i - 1];
      if (prev && prev.logical + prev.length > c.logical) {
        throw new CorruptError(`chunks at ${prev.logical} and ${c.logical} overlap`, {
          structure: 'btrfs chunk',
          offset: c.at,
          reason: 'chunk-overlap',
        });
      }
      for (const s of c.stripes) {
        if (s.devid !== devid) {
          throw new UnsupportedError(`a stripe on device ${s.devid} (this is device ${devid})`, {
            structure: 'btrfs chunk',
            offset: c.at,
            reason: 'multi-device',
          });
        }
        if (s.offset % sectorsize !== 0 || s.offset + c.length > deviceBytes) {
          throw new CorruptError(`stripe at ${s.offset} of ${c.length} bytes is off the device`, {
            structure: 'btrfs chunk',
            offset: c.at,
            reason: 'out-of-range',
          });
        }
        stripes.push({ offset: s.offset, end: s.offset + c.length, at: c.at });
      }
    }
    // Two copies of anything in the same place would mean one is lost: DUP's two stripes too.
    stripes.sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < stripes.length; i++) {
      if (stripes[i]!.offset < stripes[i - 1]!.end) {
        throw new CorruptError(`device ranges of two stripes overlap at ${stripes[i]!.offset}`, {
          structure: 'btrfs chunk',
          offset: stripes[i]!.at,
          reason: 'chunk-overlap',
        });
      }
    }
  }

  /** The chunk holding logical byte `logical`, or undefined. */
  find(logical: number): Chunk | undefined {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.chunks[mid]!;
      if (logical < c.logical) hi = mid - 1;
      else if (logical >= c.logical + c.length) lo = mid + 1;
      else return c;
    }
    return undefined;
  }
}
