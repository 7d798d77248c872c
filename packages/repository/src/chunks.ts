import { CorruptError, FieldReader, IoError } from '@diskube/core';
import { isNotFound } from './backend.js';
import { decodeObject, fromHex, ObjectType, sha256Hex, toHex } from './object.js';
import type { RepositoryReason } from './reasons.js';
import { chunkKey, type Repository } from './repository.js';

// Sources: SPEC.md, "Chunks", "Patches" and "Index objects". A chunk is stored whole
// (`chunks/…`), or as a patch: the blocks where it differs from another chunk, its base
// (`patches/…`). An index entry names the chunk and the chain of bases down to a whole chunk,
// so readers, verify and prune find every object a snapshot needs from its indexes alone.

/**
 * Longest chain of patches over a whole chunk. A backup whose patch would go deeper patches the
 * chain's whole chunk instead (all changes since it, in one patch), or stores the chunk whole.
 */
export const MAX_PATCH_DEPTH = 8;
/** Bytes per block a patch replaces. */
export const PATCH_BLOCK = 4096;
/** A patch is stored only when its blocks are at most this share of the chunk. */
const PATCH_MAX_SHARE = 0.5;

/** The all-zero id marks a chunk that is all zeros and not stored. */
export const ZERO_ID = '0'.repeat(64);

/**
 * One chunk of a snapshot: its id (the SHA-256 of its content) and, for a patch, the ids of its
 * bases, nearest first, the last a whole chunk.
 */
export interface ChunkRef {
  id: string;
  bases: readonly string[];
}

export const patchKey = (id: string, base: string): string =>
  `patches/${id.slice(0, 2)}/${id}-${base}`;

/** The keys of every object `ref` needs, top first (none for the zero chunk). */
export function refKeys(ref: ChunkRef): string[] {
  if (ref.id === ZERO_ID) return [];
  const chain = [ref.id, ...ref.bases];
  return chain.map((id, k) => (k + 1 < chain.length ? patchKey(id, chain[k + 1]!) : chunkKey(id)));
}

/**
 * The numbers of the `PATCH_BLOCK`-byte blocks where `next` differs from `base`, ascending; null
 * when the chunks differ in length or in more than half of `next`'s bytes.
 */
export function changedBlocks(base: Uint8Array, next: Uint8Array): number[] | null {
  if (base.length !== next.length) return null;
  const blocks: number[] = [];
  const wBase = words(base);
  const wNext = words(next);
  for (let at = 0, b = 0; at < next.length; at += PATCH_BLOCK, b++) {
    if (!sameRange(base, next, wBase, wNext, at, Math.min(next.length, at + PATCH_BLOCK)))
      blocks.push(b);
  }
  return withinShare(blocks, next.length);
}

/**
 * `changedBlocks` from the block digest tables (`blockDigests`) of two chunks of `length` bytes:
 * the blocks whose digests differ. Null as there, and when a table does not fit `length` (the
 * chunk is then stored whole, which is always right).
 */
export function changedBlocksByDigest(
  base: Uint8Array,
  next: Uint8Array,
  length: number,
): number[] | null {
  const count = Math.ceil(length / PATCH_BLOCK);
  if (base.length !== count * BLOCK_DIGEST || next.length !== base.length) return null;
  const wBase = words(base);
  const wNext = words(next);
  const blocks: number[] = [];
  for (let b = 0; b < count; b++) {
    const at = b * BLOCK_DIGEST;
    if (!sameRange(base, next, wBase, wNext, at, at + BLOCK_DIGEST)) blocks.push(b);
  }
  return withinShare(blocks, length);
}

/** `blocks` unless their bytes are more than `PATCH_MAX_SHARE` of a `length`-byte chunk. */
function withinShare(blocks: number[], length: number): number[] | null {
  const last = Math.ceil(length / PATCH_BLOCK) - 1;
  let bytes = blocks.length * PATCH_BLOCK;
  if (blocks.at(-1) === last) bytes -= (last + 1) * PATCH_BLOCK - length;
  return bytes > length * PATCH_MAX_SHARE ? null : blocks;
}

/** The patch over chunk `baseId` that holds `next`'s `blocks` (SPEC.md "Patches"). */
export function encodePatchBlocks(baseId: string, next: Uint8Array, blocks: number[]): Uint8Array {
  let bytes = 0;
  for (const b of blocks) bytes += Math.min(PATCH_BLOCK, next.length - b * PATCH_BLOCK);
  const out = new Uint8Array(44 + blocks.length * 4 + bytes);
  const view = new DataView(out.buffer);
  fromHex(baseId, out, 0);
  view.setUint32(32, next.length, true);
  view.setUint32(36, PATCH_BLOCK, true);
  view.setUint32(40, blocks.length, true);
  let at = 44 + blocks.length * 4;
  for (const [i, b] of blocks.entries()) {
    view.setUint32(44 + i * 4, b, true);
    const piece = next.subarray(b * PATCH_BLOCK, Math.min(next.length, (b + 1) * PATCH_BLOCK));
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** Bytes of one block's digest in a block digest table: the first 16 of its SHA-256. */
export const BLOCK_DIGEST = 16;

/**
 * The block digest table of a chunk's content: for each `PATCH_BLOCK`-byte block (the last may
 * be shorter), the first `BLOCK_DIGEST` bytes of its SHA-256. Two chunks at one position differ
 * in a block exactly where their tables do (but for a 2^-128 chance), so a backup that holds
 * the parent's table makes the patch without fetching the parent's chunk. `webCrypto`: hash
 * through WebCrypto even in Node (tests).
 */
export async function blockDigests(
  content: Uint8Array,
  webCrypto = nodeHash === undefined,
): Promise<Uint8Array> {
  const count = Math.ceil(content.length / PATCH_BLOCK);
  const out = new Uint8Array(count * BLOCK_DIGEST);
  const piece = (b: number) => content.subarray(b * PATCH_BLOCK, (b + 1) * PATCH_BLOCK);
  if (nodeHash && !webCrypto) {
    for (let b = 0; b < count; b++)
      out.set(nodeHash('sha256', piece(b), 'buffer').subarray(0, BLOCK_DIGEST), b * BLOCK_DIGEST);
    return out;
  }
  await Promise.all(
    Array.from({ length: count }, async (_, b) => {
      const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', piece(b)));
      out.set(digest.subarray(0, BLOCK_DIGEST), b * BLOCK_DIGEST);
    }),
  );
  return out;
}

/**
 * Node's one-shot `crypto.hash` when this runs in Node (found at run time, so the package still
 * loads where there is no Node): about 2.5 × faster than a WebCrypto call per 4 KiB block.
 */
const nodeHash = (
  globalThis as {
    process?: { getBuiltinModule?: (id: string) => { hash?: unknown } | undefined };
  }
).process?.getBuiltinModule?.('node:crypto')?.hash as
  | ((algorithm: string, data: Uint8Array, encoding: 'buffer') => Uint8Array)
  | undefined;

/** 32-bit words over `a` when it starts on a word boundary, else null. */
function words(a: Uint8Array): Uint32Array | null {
  return a.byteOffset % 4 === 0 ? new Uint32Array(a.buffer, a.byteOffset, a.length >> 2) : null;
}

function sameRange(
  a: Uint8Array,
  b: Uint8Array,
  wa: Uint32Array | null,
  wb: Uint32Array | null,
  start: number,
  end: number,
): boolean {
  let i = start;
  if (wa && wb && start % 4 === 0) {
    // A word at a time (four times fewer steps), then the bytes after the last whole word.
    const last = end >> 2;
    for (let w = start >> 2; w < last; w++) if (wa[w] !== wb[w]) return false;
    i = last << 2;
  }
  for (; i < end; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Apply the patch `raw` (read from `key`) to `base`, the content of chunk `baseId`; the result
 * is not checked here (its SHA-256 must be the patched chunk's id). `inPlace`: into `base`
 * itself (left part-patched when the patch is bad), else into a copy.
 */
export function applyPatch(
  raw: Uint8Array,
  key: string,
  baseId: string,
  base: Uint8Array,
  inPlace = false,
): Uint8Array {
  const structure = `repository object ${key}`;
  const r = new FieldReader<RepositoryReason>(raw, structure, 0).need(44);
  const bad = (what: string, at: number): never => {
    throw new CorruptError(`${key}: ${what}`, { structure, offset: at, reason: 'bad-patch' });
  };
  if (toHex(raw.subarray(0, 32)) !== baseId) bad(`names base ${toHex(raw.subarray(0, 32))}`, 0);
  const length = r.u32le(32);
  const block = r.u32le(36);
  const count = r.u32le(40);
  if (length !== base.length)
    bad(`is for a ${length}-byte chunk, its base holds ${base.length}`, 32);
  if (block === 0 || block > 16 * 1024 * 1024) bad(`block size ${block}`, 36);
  const blocks = Math.ceil(length / block);
  if (count > blocks) bad(`${count} blocks, the chunk has ${blocks}`, 40);
  const out = inPlace ? base : base.slice();
  let at = 44 + count * 4;
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const b = r.u32le(44 + i * 4);
    if (b <= previous || b >= blocks) bad(`block ${b} out of order or past the chunk`, 44 + i * 4);
    previous = b;
    const size = Math.min(block, length - b * block);
    if (at + size > raw.length) bad('ends early', raw.length);
    out.set(raw.subarray(at, at + size), b * block);
    at += size;
  }
  if (at !== raw.length) bad(`holds ${raw.length - at} bytes after its blocks`, at);
  return out;
}

/** Read an object, turning "not found" into an IO error that names the chunk and the key. */
async function fetch(repo: Repository, key: string, signal?: AbortSignal): Promise<Uint8Array> {
  try {
    return await repo.backend.get(key, signal);
  } catch (error) {
    if (isNotFound(error)) {
      throw new IoError(`${key} is missing from ${repo.backend.location}`, {
        reason: 'not-found',
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * The content of a chunk, checked: a whole chunk by its SHA-256; a patch chain from its whole
 * base up, its result checked against the chunk's id (`everyStep`: each step's result against
 * the id it must have, so that a damaged patch whose blocks a later patch overwrites is found
 * too, as verify needs). Errors name the object at fault (the key in `structure`): CORRUPT
 * `chunk-digest`, `bad-patch`, or IO `not-found`.
 */
export async function fetchChunk(
  repo: Repository,
  ref: ChunkRef,
  signal?: AbortSignal,
  everyStep = false,
): Promise<Uint8Array> {
  return (await fetchChain(repo, ref, signal, everyStep)).top;
}

/**
 * `fetchChunk`, with the content of the whole chunk at the bottom of `ref`'s chain (`bottom`)
 * besides `ref`'s own (`top`); both checked against their ids.
 */
export async function fetchChain(
  repo: Repository,
  ref: ChunkRef,
  signal?: AbortSignal,
  everyStep = false,
): Promise<{ bottom: Uint8Array; top: Uint8Array }> {
  const chain = [ref.id, ...ref.bases];
  const keys = refKeys(ref);
  const last = chain.length - 1;
  // Every object of the chain is requested at once (one round trip, not one per step: a chain
  // of 8 over S3 otherwise costs 8 latencies), then checked from the bottom up, so the error
  // reported is the lowest object's, as when they are read one by one.
  const settled = await Promise.allSettled(keys.map((key) => fetch(repo, key, signal)));
  const got = (k: number): Uint8Array => {
    const r = settled[k]!;
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  };
  const bottom = await decodeObject(
    got(last),
    ObjectType.chunk,
    keys[last]!,
    chain[last]!,
    repo.codec,
  );
  const climb = async (checkEach: boolean): Promise<Uint8Array> => {
    // One copy of the base, patched in place step by step.
    const content = last > 0 ? bottom.slice() : bottom;
    for (let k = last - 1; k >= 0; k--) {
      const key = keys[k]!;
      const raw = await decodeObject(got(k), ObjectType.patch, key, null, repo.codec);
      applyPatch(raw, key, chain[k + 1]!, content, true);
      if (checkEach || k === 0) {
        const digest = await sha256Hex(content);
        if (digest !== chain[k]) {
          throw new CorruptError(`${key}: patched content has digest ${digest}, not ${chain[k]}`, {
            structure: `repository object ${key}`,
            offset: 0,
            reason: 'chunk-digest',
          });
        }
      }
    }
    return content;
  };
  if (everyStep || last <= 1) return { bottom, top: await climb(true) };
  try {
    return { bottom, top: await climb(false) };
  } catch (error) {
    // Wrong at the top: check every step to name the patch at fault.
    if (!CorruptError.isInstance(error)) throw error;
    return { bottom, top: await climb(true) };
  }
}

/** The key of the object at fault in an error from `fetchChunk` (from its structure). */
export function keyOfError(error: unknown, fallback: string): string {
  const structure = (error as { structure?: unknown }).structure;
  return typeof structure === 'string' && structure.startsWith('repository object ')
    ? structure.slice('repository object '.length)
    : fallback;
}

/**
 * Index object content: version 1 holds 32-byte ids only (whole chunks); version 2 holds, per
 * chunk, a depth byte `d` (0 … MAX_PATCH_DEPTH), the id, then the `d` base ids.
 */
export function encodeIndex(refs: readonly ChunkRef[], version: number): Uint8Array {
  const size =
    version === 1 ? refs.length * 32 : refs.reduce((n, r) => n + 33 + 32 * r.bases.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  const put = (id: string) => {
    fromHex(id, out, at);
    at += 32;
  };
  for (const ref of refs) {
    if (version !== 1) out[at++] = ref.bases.length;
    put(ref.id);
    for (const base of ref.bases) put(base);
  }
  return out;
}

/** Whether the 32 bytes of `raw` at `at` are all zero (the zero chunk's id). */
export function isZeroIdAt(raw: Uint8Array, at: number): boolean {
  for (let i = 0; i < 32; i++) if (raw[at + i] !== 0) return false;
  return true;
}

/**
 * Check index object content (`count` entries) and call `each` with every entry's place: `at`,
 * the offset of its 32-byte id, followed by its `depth` base ids (version 1: depth 0). The
 * binary form of `decodeIndex`, for readers that look at millions of entries.
 */
export function forEachIndexEntry(
  raw: Uint8Array,
  count: number,
  version: number,
  structure: string,
  each: (at: number, depth: number) => void,
): void {
  const bad = (what: string, at: number): never => {
    throw new CorruptError(`${structure}: ${what}`, {
      structure,
      offset: at,
      reason: 'bad-length',
    });
  };
  if (version === 1) {
    if (raw.length !== count * 32) bad(`holds ${raw.length / 32} ids, expected ${count}`, 0);
    for (let i = 0; i < count; i++) each(i * 32, 0);
    return;
  }
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at >= raw.length) bad(`holds ${i} entries, expected ${count}`, at);
    const depth = raw[at]!;
    if (depth > MAX_PATCH_DEPTH) {
      throw new CorruptError(`${structure}: patch depth ${depth} above ${MAX_PATCH_DEPTH}`, {
        structure,
        offset: at,
        reason: 'bad-patch',
      });
    }
    if (at + 1 + 32 * (depth + 1) > raw.length) bad('ends inside an entry', at);
    for (let k = 0; depth > 0 && k <= depth; k++) {
      if (isZeroIdAt(raw, at + 1 + 32 * k)) {
        throw new CorruptError(`${structure}: a patch of or over the zero chunk`, {
          structure,
          offset: at,
          reason: 'bad-patch',
        });
      }
    }
    each(at + 1, depth);
    at += 1 + 32 * (depth + 1);
  }
  if (at !== raw.length) bad(`holds ${raw.length - at} bytes after its ${count} entries`, at);
}

/** The entry of index content `raw` whose id is at `at`, with `depth` bases. */
export function refAt(raw: Uint8Array, at: number, depth: number): ChunkRef {
  const bases: string[] = [];
  for (let k = 1; k <= depth; k++) bases.push(toHex(raw.subarray(at + 32 * k, at + 32 * k + 32)));
  return { id: toHex(raw.subarray(at, at + 32)), bases };
}

export function decodeIndex(
  raw: Uint8Array,
  count: number,
  version: number,
  structure: string,
): ChunkRef[] {
  const refs: ChunkRef[] = [];
  forEachIndexEntry(raw, count, version, structure, (at, depth) =>
    refs.push(refAt(raw, at, depth)),
  );
  return refs;
}
