import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, InvalidArgumentError } from '@diskube/core';
import {
  blockDigests,
  type ChunkRef,
  changedBlocks,
  changedBlocksByDigest,
  encodeIndex,
  encodePatchBlocks,
  fetchChain,
  MAX_PATCH_DEPTH,
  patchKey,
  ZERO_ID,
} from './chunks.js';
import { cacheDigests, cachedDigests, sweepDigests } from './digest-cache.js';
import { NO_KEY, PassKeys } from './keyset.js';
import { acquireLock } from './locks.js';
import { encodeObject, ObjectType, sha256Hex } from './object.js';
import { pool } from './pool.js';
import {
  CHUNKS_PER_INDEX,
  chunkKey,
  encodeJson,
  indexKey,
  putObject,
  type Repository,
  snapshotKey,
  usedMapKey,
} from './repository.js';
import {
  listSnapshots,
  readIndex,
  readManifest,
  readUsedMap,
  type SnapshotInfo,
  type SnapshotManifest,
  USED_MAP_PIECE,
} from './snapshots.js';

export interface RepositoryProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface BackupToRepositoryOptions {
  /** The virtual disk. */
  source: BlockSource;
  /** One bit per `blockSize` block of `source`: the blocks to keep. */
  used: Bitmap;
  blockSize: number;
  /** Whether the bytes after `used.length × blockSize` are kept. Default true. */
  tailUsed?: boolean;
  /** The VM (group) name. */
  name: string;
  facts?: Record<string, unknown>;
  summary?: unknown;
  /** Snapshot id to back up against; default the latest snapshot of `name` ("none" for none). */
  parent?: string | 'none';
  /** Byte ranges that may have changed since the parent; everything else is taken from it. */
  changedRanges?: ReadonlyArray<readonly [number, number]>;
  signal?: AbortSignal;
  onProgress?: (progress: RepositoryProgress) => void;
}

export interface BackupToRepositoryResult {
  id: string;
  snapshot: SnapshotInfo;
  parent: string | null;
  chunkCount: number;
  /** Chunks with no used byte or all zeros: not stored. */
  zeroChunks: number;
  /** Chunks read from the source. */
  chunksRead: number;
  bytesRead: number;
  /** Chunks taken from the parent without reading or asking the store. */
  chunksFromParent: number;
  /**
   * Chunks found already in the repository (by HEAD): whole, or, over another VM's parent, as the
   * patch another clone stored for the same change of the same base.
   */
  chunksDeduplicated: number;
  newChunks: number;
  /** Chunks stored as patches over the parent's chunk at the same position. */
  newPatches: number;
  newStoredBytes: number;
}

/** A bounded set of recently handled chunk ids (dedup within one backup, bounded memory). */
class RecentRefs {
  private readonly refs = new Map<string, ChunkRef>();
  constructor(private readonly max: number) {}
  get(id: string): ChunkRef | undefined {
    return this.refs.get(id);
  }
  add(ref: ChunkRef): void {
    if (this.refs.size >= this.max) this.refs.delete(this.refs.keys().next().value as string);
    this.refs.set(ref.id, ref);
  }
}

interface Plan {
  chunkSize: number;
  blockSize: number;
  used: Bitmap;
  tailStart: number;
  tailUsed: boolean;
  size: number;
}

/** How many chunks hold a used byte: the most a backup without a parent asks about. */
function chunksWithUsedBytes(plan: Plan): number {
  let count = 0;
  let last = -1;
  const add = (start: number, end: number) => {
    const first = Math.max(Math.floor(start / plan.chunkSize), last + 1);
    const final = Math.floor((end - 1) / plan.chunkSize);
    if (final >= first) count += final - first + 1;
    last = Math.max(last, final);
  };
  plan.used.forEachRun((b, n) =>
    add(b * plan.blockSize, Math.min((b + n) * plan.blockSize, plan.size)),
  );
  if (plan.tailUsed && plan.size > plan.tailStart) add(plan.tailStart, plan.size);
  return count;
}

/** Keys a backup lists before it asks about chunks one by one instead (about 40 MiB). */
const MAX_LISTED_CHUNKS = 1 << 19;
/** Chunk keys per LIST page (S3's maximum and default). */
const KEYS_PER_PAGE = 1000;

/**
 * Every chunk in the repository, from one listing of `chunks/`, when that costs at most an eighth
 * of a request per chunk to check (`candidates` chunks, 1,000 keys a page) and at most
 * MAX_LISTED_CHUNKS keys; null when it would cost more (the listing stops there). The set only
 * saves requests: a chunk missing from it is uploaded again (same key, same bytes), and prune,
 * which alone deletes chunks, cannot run while the backup holds its lock.
 */
async function listedChunks(
  repo: Repository,
  candidates: number,
  signal?: AbortSignal,
): Promise<PassKeys | null> {
  const limit = Math.min(MAX_LISTED_CHUNKS, Math.floor((candidates / 8) * KEYS_PER_PAGE));
  const keys = new PassKeys(limit);
  for await (const info of repo.backend.list('chunks/', signal)) {
    if (keys.size >= limit) return null;
    keys.listed(info.key, true);
  }
  return keys;
}

/** The byte runs of chunk `i` that hold used blocks (clipped to the disk). */
function usedRuns(plan: Plan, i: number): Array<[number, number]> {
  const start = i * plan.chunkSize;
  const end = Math.min(start + plan.chunkSize, plan.size);
  const runs: Array<[number, number]> = [];
  const firstBlock = Math.floor(start / plan.blockSize);
  const lastBlock = Math.min(Math.ceil(end / plan.blockSize), plan.used.length);
  if (firstBlock < lastBlock) {
    plan.used.forEachRun(
      (b, n) => {
        const s = Math.max(b * plan.blockSize, start);
        const e = Math.min((b + n) * plan.blockSize, end);
        if (e > s) runs.push([s, e - s]);
      },
      firstBlock,
      lastBlock,
    );
  }
  if (plan.tailUsed && end > plan.tailStart) {
    const s = Math.max(plan.tailStart, start);
    const last = runs.at(-1);
    if (last && last[0] + last[1] === s) last[1] += end - s;
    else runs.push([s, end - s]);
  }
  return runs;
}

function isZero(bytes: Uint8Array): boolean {
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 3);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  for (let i = words.length * 8; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Back up a disk into the repository (SPEC.md "Backup"). Unused blocks are zero inside a chunk
 * before it is hashed; chunks with no used byte are not read; all-zero chunks are not stored;
 * chunks equal to the parent's chunk at the same position are neither uploaded nor asked about;
 * other chunks are HEADed (or, without a parent, looked up in one listing of the repository's
 * chunks when that is cheaper) and uploaded when missing. The manifest is written last, under a
 * shared lock, so an interrupted backup leaves no snapshot.
 */
export async function backupToRepository(
  repo: Repository,
  options: BackupToRepositoryOptions,
): Promise<BackupToRepositoryResult> {
  const { source, used, blockSize, signal } = options;
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || used.length * blockSize > source.size) {
    throw new InvalidArgumentError(
      `used map of ${used.length} × ${blockSize}-byte blocks does not fit the ${source.size}-byte source`,
      {
        reason: 'usage',
      },
    );
  }
  if (!options.name || !/^[A-Za-z0-9._-]{1,128}$/.test(options.name)) {
    throw new InvalidArgumentError(`VM name "${options.name}" must be 1-128 of [A-Za-z0-9._-]`, {
      reason: 'usage',
    });
  }
  const chunkSize = repo.config.chunkSize;
  const plan: Plan = {
    chunkSize,
    blockSize,
    used,
    tailStart: used.length * blockSize,
    tailUsed: options.tailUsed ?? true,
    size: source.size,
  };
  const chunkCount = Math.ceil(source.size / chunkSize);
  const time = new Date().toISOString();
  // The client cache's old block digest tables go first (a day apart at most; local only).
  if (repo.backend.remote) await sweepDigests(repo);
  const lock = await acquireLock(repo, false, `backup ${options.name}`, signal);
  try {
    // The parent: given, or the newest snapshot of this VM.
    let parent: SnapshotInfo | null = null;
    // Read from the repository, not the client cache: under our lock a manifest still there
    // has all its objects, while a forgotten one's may be half pruned.
    if (options.parent && options.parent !== 'none')
      parent = await readManifest(repo, options.parent, signal, true);
    else if (options.parent === undefined) {
      parent =
        (await listSnapshots(repo, { name: options.name, ...(signal ? { signal } : {}) })).at(-1) ??
        null;
    }
    if (parent && parent.chunkSize !== chunkSize) parent = null;
    if (options.changedRanges && !parent) {
      throw new InvalidArgumentError('changed ranges need a parent snapshot of the same VM', {
        reason: 'usage',
      });
    }
    // With changed ranges: chunks to read = touched by a range, or whose used blocks differ.
    let mustRead: Bitmap | null = null;
    if (options.changedRanges && parent) {
      mustRead = new Bitmap(chunkCount);
      for (const [offset, length] of options.changedRanges) {
        if (length <= 0) continue;
        const first = Math.floor(offset / chunkSize);
        const last = Math.min(Math.ceil((offset + length) / chunkSize), chunkCount);
        if (first < last) mustRead.setRange(first, last - first);
      }
      const parentUsed = await readUsedMap(repo, parent, signal);
      if (
        parent.blockSize !== blockSize ||
        parent.diskSize !== source.size ||
        parentUsed.length !== used.length ||
        parent.tailUsed !== plan.tailUsed
      ) {
        mustRead.setAll();
      } else {
        const diff = parentUsed;
        // diff = used XOR parentUsed, as (used andNot parent) or (parent andNot used).
        const newly = used.clone().andNot(diff);
        diff.andNot(used).or(newly);
        const factor = chunkSize / blockSize;
        if (Number.isInteger(factor)) mustRead.or(fit(diff.coarsen(factor), chunkCount));
        else mustRead.setAll();
      }
    }
    // Without a parent every chunk with a used byte needs asking about: one listing may answer
    // for all of them (a first backup into a small or empty repository).
    const listed =
      parent === null ? await listedChunks(repo, chunksWithUsedBytes(plan), signal) : null;
    const recent = new RecentRefs(65536);
    // Version 1 repositories hold whole chunks only (their readers know no patches).
    const patches = repo.config.version >= 2;
    const result = {
      zeroChunks: 0,
      chunksRead: 0,
      bytesRead: 0,
      chunksFromParent: 0,
      chunksDeduplicated: 0,
      newChunks: 0,
      newPatches: 0,
      newStoredBytes: 0,
    };
    const indexes: string[] = [];
    let bytesDone = 0;
    const zero: ChunkRef = { id: ZERO_ID, bases: [] };
    const tables = repo.cache !== undefined && repo.backend.remote === true;
    const shared = parent !== null && parent.name !== options.name;
    /**
     * Store a chunk that neither the parent nor the repository has: a patch over the parent's
     * chunk at the same position, or, where that chain is as deep as allowed, over its whole
     * chunk (every change since, in one patch); whole when more than half of it changed.
     */
    const store = async (id: string, raw: Uint8Array, parentRef: ChunkRef | undefined) => {
      if (patches && parentRef !== undefined && parentRef.id !== ZERO_ID) {
        const chain = [parentRef.id, ...parentRef.bases];
        const over = chain.length <= MAX_PATCH_DEPTH ? 0 : chain.length - 1;
        const baseId = chain[over]!;
        // Over another VM's chunk (a template's), another clone may have made the same change:
        // its patch has this key, so neither the base nor the upload is needed.
        if (shared && (await repo.backend.head(patchKey(id, baseId), signal)) !== undefined) {
          result.chunksDeduplicated++;
          if (tables) await cacheDigests(repo, id, raw.length, await blockDigests(raw));
          return { id, bases: chain.slice(over) };
        }
        // With a cache and a remote store, the blocks that changed come from the two chunks'
        // block digest tables when the base's is cached (no fetch); the new chunk's is kept for
        // the next backup.
        const nextTable = tables ? await blockDigests(raw) : undefined;
        let blocks: number[] | null | undefined;
        if (nextTable) {
          const base = await cachedDigests(repo, baseId);
          if (base?.length === raw.length)
            blocks = changedBlocksByDigest(base.table, nextTable, raw.length);
        }
        if (blocks === undefined) {
          const { bottom, top } = await fetchChain(repo, parentRef, signal);
          const base = over === 0 ? top : bottom;
          blocks = changedBlocks(base, raw);
          // The base's table is kept only where it is likely to serve again: a chain's whole
          // chunk (the base of every patch past the depth limit) or another VM's chunk (a
          // template's, for the next clones). The VM's own parent chunk is superseded by this one.
          if (nextTable && (over > 0 || shared))
            await cacheDigests(repo, baseId, base.length, await blockDigests(base));
        }
        if (nextTable) await cacheDigests(repo, id, raw.length, nextTable);
        if (blocks !== null) {
          const object = encodeObject(
            ObjectType.patch,
            encodePatchBlocks(baseId, raw, blocks),
            repo.codec,
          );
          await repo.backend.put(patchKey(id, baseId), object, signal);
          result.newPatches++;
          result.newStoredBytes += object.length;
          return { id, bases: chain.slice(over) };
        }
      }
      const object = encodeObject(ObjectType.chunk, raw, repo.codec);
      await repo.backend.put(chunkKey(id), object, signal);
      result.newChunks++;
      result.newStoredBytes += object.length;
      return { id, bases: [] };
    };
    for (let first = 0; first < chunkCount; first += CHUNKS_PER_INDEX) {
      const count = Math.min(CHUNKS_PER_INDEX, chunkCount - first);
      const n = first / CHUNKS_PER_INDEX;
      const parentRefs =
        parent && n < parent.indexes.length ? await readIndex(repo, parent, n, signal) : null;
      const refs: ChunkRef[] = new Array(count).fill(zero);
      await pool(count, repo.concurrency, async (k) => {
        signal?.throwIfAborted();
        const i = first + k;
        const start = i * chunkSize;
        const length = Math.min(chunkSize, source.size - start);
        const parentRef = parentRefs?.[k];
        let ref = zero;
        if (mustRead && !mustRead.get(i) && parentRef !== undefined) {
          ref = parentRef;
          result.chunksFromParent++;
        } else {
          const runs = usedRuns(plan, i);
          if (runs.length > 0) {
            const raw = new Uint8Array(length);
            for (const [s, len] of runs)
              await source.read(s, raw.subarray(s - start, s - start + len));
            result.chunksRead++;
            result.bytesRead += runs.reduce((sum, [, len]) => sum + len, 0);
            if (!isZero(raw)) {
              const id = await sha256Hex(raw);
              const known = recent.get(id);
              if (id === parentRef?.id) {
                ref = parentRef;
                result.chunksFromParent++;
              } else if (known) {
                ref = known;
                result.chunksDeduplicated++;
              } else if (
                listed
                  ? listed.ref(id, null, false) !== NO_KEY
                  : (await repo.backend.head(chunkKey(id), signal)) !== undefined
              ) {
                ref = { id, bases: [] };
                result.chunksDeduplicated++;
                recent.add(ref);
              } else {
                ref = await store(id, raw, parentRef);
                recent.add(ref);
              }
            }
          }
        }
        if (ref.id === ZERO_ID) result.zeroChunks++;
        refs[k] = ref;
        bytesDone += length;
        options.onProgress?.({ bytesDone, bytesTotal: source.size });
      });
      const ids = encodeIndex(refs, patches ? 2 : 1);
      indexes.push((await putObject(repo, ObjectType.index, ids, indexKey, signal)).id);
    }
    const usedBytes = used.toBytes();
    const usedMaps: string[] = [];
    for (let at = 0; at < usedBytes.length; at += USED_MAP_PIECE) {
      usedMaps.push(
        (
          await putObject(
            repo,
            ObjectType.usedMap,
            usedBytes.subarray(at, at + USED_MAP_PIECE),
            usedMapKey,
            signal,
          )
        ).id,
      );
    }
    const tailBytes = plan.tailUsed ? source.size - plan.tailStart : 0;
    const manifest: SnapshotManifest = {
      version: patches ? 2 : 1,
      name: options.name,
      time,
      host: repo.owner.host,
      parent: parent?.id ?? null,
      facts: options.facts ?? {},
      summary: options.summary ?? null,
      diskSize: source.size,
      chunkSize,
      blockSize,
      usedBytes: used.count() * blockSize + tailBytes,
      tailUsed: plan.tailUsed,
      usedMaps,
      usedBlockCount: used.length,
      chunkCount,
      indexes,
      newChunks: result.newChunks,
      newPatches: result.newPatches,
      newStoredBytes: result.newStoredBytes,
    };
    signal?.throwIfAborted();
    // Prune respects only a live lock: one lost meanwhile means chunks found by HEAD or
    // uploaded here may have been swept.
    await lock.check(signal);
    // Written last: the snapshot exists from here on.
    const { id } = await putObject(
      repo,
      ObjectType.manifest,
      encodeJson(manifest),
      snapshotKey,
      signal,
    );
    return {
      id,
      snapshot: { id, ...manifest },
      parent: manifest.parent,
      chunkCount,
      ...result,
    };
  } finally {
    await lock.release();
  }
}

/** `bits` cut or padded to `length` bits (a chunk grid that does not end on a block edge). */
function fit(bits: Bitmap, length: number): Bitmap {
  const out = new Bitmap(length);
  bits.forEachRun((s, n) => {
    const e = Math.min(s + n, length);
    if (e > s) out.setRange(s, e - s);
  });
  return out;
}
