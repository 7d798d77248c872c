import { BLOCK_DIGEST, PATCH_BLOCK } from './chunks.js';
import { fromHex, sha256Hex, toHex } from './object.js';
import type { ObjectCache, Repository } from './repository.js';

// Sources: SPEC.md, "Block digest cache". A client-side cache beside the manifests' copies
// (`OpenOptions.cache`): for a chunk id, the chunk's length (u32 LE), the block digest table of
// its content (`blockDigests`), then the SHA-256 of the id's 32 bytes and all before, so a
// damaged, truncated or misplaced copy is found and passed over. Nothing in the repository
// depends on it: a backup without a copy fetches the parent's chunk, as it does without a cache.

const CHECK = 32;

export const digestKey = (id: string): string => `digests/${id.slice(0, 2)}/${id}`;

/** A chunk's length and block digest table. */
export interface CachedDigests {
  length: number;
  table: Uint8Array;
}

/** The check of a table file: the SHA-256 of the id's 32 bytes and `body`, in hex. */
function check(id: string, body: Uint8Array): Promise<string> {
  const both = new Uint8Array(32 + body.length);
  fromHex(id, both, 0);
  both.set(body, 32);
  return sha256Hex(both);
}

/** The cached length and block digest table of chunk `id`, when the cache holds an intact copy. */
export async function cachedDigests(
  repo: Repository,
  id: string,
): Promise<CachedDigests | undefined> {
  const cache = repo.cache;
  if (!cache) return undefined;
  const bytes = await cache.get(digestKey(id)).catch(() => undefined);
  if (!bytes) return undefined;
  if (bytes.length >= 4 + CHECK) {
    const body = bytes.subarray(0, bytes.length - CHECK);
    const length = new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true);
    const table = body.subarray(4);
    if (
      table.length === Math.ceil(length / PATCH_BLOCK) * BLOCK_DIGEST &&
      toHex(bytes.subarray(body.length)) === (await check(id, body))
    )
      return { length, table };
  }
  await cache.delete(digestKey(id)).catch(() => {});
  return undefined;
}

/** Keep chunk `id`'s block digest table in the cache, if there is one; a failing cache is passed over. */
export async function cacheDigests(
  repo: Repository,
  id: string,
  length: number,
  table: Uint8Array,
): Promise<void> {
  const cache = repo.cache;
  if (!cache) return;
  const bytes = new Uint8Array(4 + table.length + CHECK);
  new DataView(bytes.buffer).setUint32(0, length, true);
  bytes.set(table, 4);
  fromHex(await check(id, bytes.subarray(0, 4 + table.length)), bytes, 4 + table.length);
  await cache.put(digestKey(id), bytes).catch(() => {});
}

/** Tables not written for this long are dropped (SPEC.md, "Block digest cache"). */
export const TABLE_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
const SWEEP_EVERY_MS = 24 * 3600 * 1000;
const SWEPT = 'digests-swept';

/**
 * Drop the tables not written for `TABLE_MAX_AGE_MS`, at most once a day per cache (the time of
 * the last sweep is kept under `digests-swept`), when the cache can (`ObjectCache.sweep`). A
 * dropped table costs one fetch of its chunk, which keeps it again.
 */
export async function sweepDigests(repo: Repository, now = Date.now()): Promise<void> {
  if (repo.cache) await sweepOnceADay(repo.cache, 'digests', SWEPT, TABLE_MAX_AGE_MS, now);
}

/**
 * `cache.sweep(prefix, now − maxAgeMs)` (when the cache can sweep), at most once a day: the time
 * of the last sweep is kept under key `marker`. Failures are ignored; a cache is only a cache.
 */
export async function sweepOnceADay(
  cache: ObjectCache,
  prefix: string,
  marker: string,
  maxAgeMs: number,
  now = Date.now(),
): Promise<void> {
  if (!cache.sweep) return;
  const mark = await cache.get(marker).catch(() => undefined);
  const last = mark ? Number(new TextDecoder().decode(mark)) : Number.NaN;
  if (last <= now && now - last < SWEEP_EVERY_MS) return;
  await cache.put(marker, new TextEncoder().encode(String(now))).catch(() => {});
  await cache.sweep(prefix, now - maxAgeMs).catch(() => {});
}
