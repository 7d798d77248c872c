import { DiskubeError, InvalidArgumentError } from '@diskube/core';
import type { ObjectInfo } from './backend.js';
import { type ChunkRef, fetchChunk, isZeroIdAt, keyOfError, refAt, refKeys } from './chunks.js';
import {
  CHUNK_PREFIXES,
  DEFAULT_KEYS_PER_PASS,
  inPasses,
  KEY_PRESENT,
  KEY_READ,
  KEY_REFERENCED,
  KEY_TOP,
  listPassObjects,
  NO_KEY,
  type PassKeys,
} from './keyset.js';
import { acquireLock } from './locks.js';
import { ObjectType } from './object.js';
import { mapPool } from './pool.js';
import { getObject, indexKey, type Repository, snapshotKey, usedMapKey } from './repository.js';
import {
  indexEntries,
  listSnapshots,
  readManifest,
  type SnapshotInfo,
  snapshotIds,
} from './snapshots.js';

export interface VerifyProblem {
  kind: 'missing' | 'damaged';
  /** The object's key (`chunks/ab/ab…`, `patches/ab/ab…-cd…`, `index/…`, `snapshots/…`). */
  key: string;
  /** The error's reason (`chunk-digest`, `not-found` …). */
  reason: string;
  message: string;
  /** The snapshots that need it. */
  snapshots: string[];
}

export interface VerifyRepositoryResult {
  ok: boolean;
  snapshots: number;
  /** Distinct chunks the snapshots reference (a patched chunk counts once, with its bases). */
  chunksReferenced: number;
  /** Chunks read and re-hashed (`readData`), each through its whole patch chain. */
  chunksRead: number;
  /** Passes over the snapshots' indexes (more than one when the keys outgrow `keysPerPass`). */
  passes: number;
  problems: VerifyProblem[];
}

/** Options verify, prune and stats share. */
export interface MaintenanceOptions {
  signal?: AbortSignal;
  /**
   * Chunk and patch keys held in memory at once (about 80 bytes each; 2^20 by default). A
   * repository with more is processed in several passes over ranges of its ids.
   */
  keysPerPass?: number;
}

/**
 * Call `each` for every non-zero entry of the index objects of `manifests`, in order, with its
 * place in the index content (`raw`, the id's offset `at`, its `depth` of bases) and its
 * snapshot: no strings or objects per entry. The index objects are read `repo.concurrency`
 * ahead (a repository on S3 pays a round trip per object). An index object that cannot be read
 * goes to `failed` when given, else throws; `afterIndex` runs after each index object.
 */
async function forEachEntry(
  repo: Repository,
  manifests: readonly SnapshotInfo[],
  each: (raw: Uint8Array, at: number, depth: number, m: SnapshotInfo) => void,
  signal?: AbortSignal,
  failed?: (error: unknown, m: SnapshotInfo, n: number) => void,
  afterIndex?: () => Promise<void>,
): Promise<void> {
  const jobs: Array<[SnapshotInfo, number]> = [];
  for (const m of manifests) for (let n = 0; n < m.indexes.length; n++) jobs.push([m, n]);
  type Read = { raw: Uint8Array } | { error: unknown };
  const ahead: Array<Promise<Read>> = [];
  const start = (j: number) => {
    const [m, n] = jobs[j]!;
    ahead.push(
      getObject(repo, ObjectType.index, m.indexes[n]!, indexKey, signal).then(
        (raw) => ({ raw }),
        (error: unknown) => ({ error }),
      ),
    );
  };
  let next = 0;
  for (let j = 0; j < jobs.length; j++) {
    while (next < jobs.length && next < j + Math.max(1, repo.concurrency)) start(next++);
    const [m, n] = jobs[j]!;
    const read = await ahead.shift()!;
    try {
      if ('error' in read) throw read.error;
      indexEntries(m, n, read.raw, (raw, at, depth) => {
        if (depth > 0 || !isZeroIdAt(raw, at)) each(raw, at, depth, m);
      });
    } catch (error) {
      if (!failed || !DiskubeError.isInstance(error)) throw error;
      failed(error, m, n);
    }
    await afterIndex?.();
  }
}

/**
 * Call `each` with the handle (in `keys`, added when `insert`) of every object of the chain of
 * the index entry at `at` (`depth` bases) that lies in the pass's range, and its position in
 * the chain (0: the chunk itself).
 */
function forEachKey(
  keys: PassKeys,
  raw: Uint8Array,
  at: number,
  depth: number,
  insert: boolean,
  each: (handle: number, k: number) => void,
): void {
  for (let k = 0; k <= depth; k++) {
    const handle = keys.refBytes(raw, at + 32 * k, k < depth, insert);
    if (handle !== NO_KEY) each(handle, k);
  }
}

/** Mark each listed object of the pass's range present, with its size. */
async function listPresent(repo: Repository, keys: PassKeys, signal?: AbortSignal): Promise<void> {
  for await (const info of listPassObjects(repo, keys, signal)) {
    const handle = keys.listed(info.key, true);
    if (handle === NO_KEY) continue;
    keys.setFlags(handle, KEY_PRESENT);
    keys.setStoredSize(handle, info.size);
  }
}

function problemOf(error: unknown, key: string, snapshots: string[]): VerifyProblem {
  if (!DiskubeError.isInstance(error)) throw error;
  const missing = error.reason === 'not-found';
  return {
    kind: missing ? 'missing' : 'damaged',
    key,
    reason: error.reason ?? error.code,
    message: error.message,
    snapshots,
  };
}

/** Run tasks with at most `limit` in flight; `run` waits for a free place. The first error wins. */
function taskPool(limit: number) {
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | null = null;
  return {
    async run(task: () => Promise<void>): Promise<void> {
      while (running.size >= limit) await Promise.race(running);
      if (failure) throw failure.error;
      const p: Promise<void> = task()
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => running.delete(p));
      running.add(p);
    },
    async drain(): Promise<void> {
      await Promise.all(running);
      if (failure) throw failure.error;
    },
  };
}

/**
 * Check the repository: every manifest, index object and used map is read and re-hashed, and
 * every chunk a snapshot references must exist; with `readData` every chunk is read and
 * re-hashed too. Each problem names the object and every snapshot that needs it. Memory holds
 * at most `keysPerPass` keys (SPEC.md "Verify, prune and stats at scale").
 */
export async function verifyRepository(
  repo: Repository,
  options: MaintenanceOptions & {
    readData?: boolean;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<VerifyRepositoryResult> {
  const { signal } = options;
  const problems = new Map<string, VerifyProblem>();
  const add = (p: VerifyProblem, snapshot: string) => {
    const known = problems.get(p.key);
    if (known) {
      if (!known.snapshots.includes(snapshot)) known.snapshots.push(snapshot);
    } else problems.set(p.key, p);
  };
  const ids = await snapshotIds(repo, signal);
  const manifests: SnapshotInfo[] = [];
  // Read `repo.concurrency` snapshots at once; problems are added in the snapshots' order.
  const read = await mapPool(ids, repo.concurrency, async (sid) => {
    const found: VerifyProblem[] = [];
    let m: SnapshotInfo;
    try {
      m = await readManifest(repo, sid, signal, true); // the repository's own, not a cached copy
    } catch (error) {
      return { m: null, found: [problemOf(error, snapshotKey(sid), [sid])] };
    }
    for (const uid of m.usedMaps) {
      try {
        await getObject(repo, ObjectType.usedMap, uid, usedMapKey, signal);
      } catch (error) {
        found.push(problemOf(error, usedMapKey(uid), [sid]));
      }
    }
    return { m, found };
  });
  for (const [i, { m, found }] of read.entries()) {
    if (m) manifests.push(m);
    for (const p of found) add(p, ids[i]!);
  }
  /** Each readable index entry, with its snapshot; unreadable indexes become problems. */
  const everyEntry = async (
    each: (raw: Uint8Array, at: number, depth: number, sid: string) => void,
  ) => {
    await forEachEntry(
      repo,
      manifests,
      (raw, at, depth, m) => each(raw, at, depth, m.id),
      signal,
      (error, m, n) => add(problemOf(error, `index/${m.indexes[n]}`, [m.id]), m.id),
    );
  };
  let chunksReferenced = 0;
  let chunksRead = 0;
  let readBefore = 0;
  const damaged = new Map<string, VerifyProblem>();
  const passes = await inPasses(options.keysPerPass ?? DEFAULT_KEYS_PER_PASS, async (keys) => {
    await listPresent(repo, keys, signal);
    await everyEntry((raw, at, depth, sid) => {
      forEachKey(keys, raw, at, depth, true, (handle, k) => {
        keys.setFlags(handle, KEY_REFERENCED | (k === 0 ? KEY_TOP : 0));
        if (keys.flags(handle) & KEY_PRESENT) return;
        const ref = refAt(raw, at, depth);
        const key = refKeys(ref)[k]!;
        add(
          {
            kind: 'missing',
            key,
            reason: 'not-found',
            message: `${key} (chunk ${ref.id}) is missing`,
            snapshots: [sid],
          },
          sid,
        );
      });
    });
    chunksReferenced += keys.count(KEY_TOP);
    if (!options.readData) return;
    // The set is complete for this range: read each chunk whose top object lies in it once,
    // collected an index object at a time.
    const total = keys.count(KEY_TOP | KEY_PRESENT);
    const pool = taskPool(repo.concurrency);
    // Collected an index object at a time, then read.
    const toRead: ChunkRef[] = [];
    await forEachEntry(
      repo,
      manifests,
      (raw, at, depth) => {
        const top = keys.refBytes(raw, at, depth > 0, false);
        if (top === NO_KEY) return;
        const flags = keys.flags(top);
        if (flags & KEY_READ || !(flags & KEY_PRESENT)) return;
        keys.setFlags(top, KEY_READ);
        toRead.push(refAt(raw, at, depth));
      },
      signal,
      () => {}, // an unreadable index object is already a problem from the first scan
      async () => {
        for (const ref of toRead.splice(0)) {
          await pool.run(async () => {
            try {
              await fetchChunk(repo, ref, signal, true);
            } catch (error) {
              // A missing object further down the chain is reported by the pass of its range.
              if (DiskubeError.isInstance(error) && error.reason === 'not-found') return;
              const key = keyOfError(error, refKeys(ref)[0]!);
              if (!damaged.has(key)) damaged.set(key, problemOf(error, key, []));
            } finally {
              chunksRead++;
              options.onProgress?.(chunksRead, readBefore + total);
            }
          });
        }
      },
    );
    await pool.drain();
    readBefore += total;
  });
  if (damaged.size > 0) {
    // Second pass: which snapshots need each damaged object.
    await forEachEntry(
      repo,
      manifests,
      (raw, at, depth, m) => {
        for (const key of refKeys(refAt(raw, at, depth))) {
          const p = damaged.get(key);
          if (p && !p.snapshots.includes(m.id)) p.snapshots.push(m.id);
        }
      },
      signal,
      () => {}, // already a problem from the first scan
    );
    for (const p of damaged.values()) problems.set(p.key, p);
  }
  return {
    ok: problems.size === 0,
    snapshots: ids.length,
    chunksReferenced,
    chunksRead,
    passes,
    problems: [...problems.values()],
  };
}

export interface ForgetPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
}

export interface ForgetResult {
  keep: Array<{ snapshot: SnapshotInfo; reasons: string[] }>;
  remove: SnapshotInfo[];
  dryRun: boolean;
}

/** ISO week key (`2026-W48`) of a UTC date. */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
  return `${year}-W${week}`;
}

/**
 * Remove snapshot manifests a retention policy does not keep, per VM (restic's semantics:
 * newest first; `keepDaily: n` keeps the newest snapshot of each of the n most recent days that
 * have one, and likewise per ISO week and per month, in UTC; a snapshot kept by any rule stays).
 * Chunks are freed later by `prune`.
 */
export async function forget(
  repo: Repository,
  policy: ForgetPolicy & { name?: string; dryRun?: boolean; signal?: AbortSignal },
): Promise<ForgetResult> {
  const rules: Array<[keyof ForgetPolicy, string, (s: SnapshotInfo) => string]> = [
    ['keepLast', 'last', (s) => s.id],
    ['keepDaily', 'daily', (s) => new Date(s.time).toISOString().slice(0, 10)],
    ['keepWeekly', 'weekly', (s) => isoWeek(new Date(s.time))],
    ['keepMonthly', 'monthly', (s) => new Date(s.time).toISOString().slice(0, 7)],
  ];
  const active = rules.filter(([k]) => policy[k] !== undefined);
  for (const [k] of active) {
    const v = policy[k]!;
    if (!Number.isSafeInteger(v) || v < 0)
      throw new InvalidArgumentError(`${k} must be a whole number, not ${v}`, { reason: 'usage' });
  }
  if (active.length === 0) {
    throw new InvalidArgumentError(
      'forget needs a policy (--keep-last, --keep-daily, --keep-weekly or --keep-monthly)',
      {
        reason: 'usage',
      },
    );
  }
  const all = await listSnapshots(repo, {
    ...(policy.name !== undefined ? { name: policy.name } : {}),
    ...(policy.signal ? { signal: policy.signal } : {}),
  });
  const groups = new Map<string, SnapshotInfo[]>();
  for (const s of all) groups.set(s.name, [...(groups.get(s.name) ?? []), s]);
  const result: ForgetResult = { keep: [], remove: [], dryRun: policy.dryRun ?? false };
  for (const group of groups.values()) {
    const newestFirst = [...group].reverse();
    const reasons = new Map<string, string[]>();
    for (const [k, label, bucketOf] of active) {
      let left = policy[k]!;
      let last: string | null = null;
      for (const s of newestFirst) {
        if (left <= 0) break;
        const bucket = bucketOf(s);
        if (bucket === last) continue;
        last = bucket;
        left--;
        reasons.set(s.id, [...(reasons.get(s.id) ?? []), label]);
      }
    }
    for (const s of newestFirst) {
      const why = reasons.get(s.id);
      if (why) result.keep.push({ snapshot: s, reasons: why });
      else result.remove.push(s);
    }
  }
  if (!result.dryRun)
    for (const s of result.remove) await repo.backend.delete(snapshotKey(s.id), policy.signal);
  return result;
}

export interface PruneResult {
  snapshots: number;
  deletedObjects: number;
  deletedBytes: number;
  deletedChunks: number;
  keptChunks: number;
  dryRun: boolean;
}

/**
 * Mark and sweep (SPEC.md "Prune"): under an exclusive lock (refused while a backup or another
 * prune holds a live lock), mark every object the manifests reference, then delete every chunk,
 * index object and used map not marked. A manifest that cannot be read stops the prune: its
 * chunks cannot be marked. Chunks are marked and swept a range of ids at a time when they
 * outgrow `keysPerPass`.
 */
export async function prune(
  repo: Repository,
  options: MaintenanceOptions & { dryRun?: boolean } = {},
): Promise<PruneResult> {
  const { signal } = options;
  const lock = await acquireLock(repo, true, 'prune', signal);
  try {
    /** Index objects and used maps: a few per snapshot. */
    const marked = new Set<string>();
    const ids = await snapshotIds(repo, signal);
    const manifests = await mapPool(ids, repo.concurrency, (sid) =>
      readManifest(repo, sid, signal),
    );
    for (const m of manifests) {
      for (const id of m.indexes) marked.add(`index/${id}`);
      for (const id of m.usedMaps) marked.add(`used/${id}`);
    }
    const result: PruneResult = {
      snapshots: ids.length,
      deletedObjects: 0,
      deletedBytes: 0,
      deletedChunks: 0,
      keptChunks: 0,
      dryRun: options.dryRun ?? false,
    };
    // Marking reads every manifest and index object, which can take long: before each sweep,
    // make sure no backup can have started meanwhile on a lock of ours judged stale.
    const stillHeld = () => (result.dryRun ? Promise.resolve() : lock.check(signal));
    const sweep = async (info: ObjectInfo, keep: boolean, chunk: boolean) => {
      if (keep) {
        if (chunk) result.keptChunks++;
        return;
      }
      if (!result.dryRun) await repo.backend.delete(info.key, signal);
      result.deletedObjects++;
      result.deletedBytes += info.size;
      if (chunk) result.deletedChunks++;
    };
    // Index objects and used maps first: a prune stopped midway then leaves no index object of
    // a forgotten snapshot naming chunks already deleted, only orphan chunks for the next one.
    await stillHeld();
    for (const prefix of ['index/', 'used/']) {
      for await (const info of repo.backend.list(prefix, signal))
        await sweep(info, marked.has(info.key), false);
    }
    await inPasses(options.keysPerPass ?? DEFAULT_KEYS_PER_PASS, async (keys) => {
      await forEachEntry(
        repo,
        manifests,
        (raw, at, depth) =>
          forEachKey(keys, raw, at, depth, true, (handle) => keys.setFlags(handle, KEY_REFERENCED)),
        signal,
      );
      await stillHeld();
      for await (const info of listPassObjects(repo, keys, signal))
        await sweep(info, keys.listed(info.key, false) !== NO_KEY, true);
    });
    return result;
  } finally {
    await lock.release();
  }
}

export interface GroupStats {
  snapshots: number;
  /** Sum of the snapshots' disk sizes. */
  logicalBytes: number;
  /** Sum of the bytes their used maps keep. */
  usedBytes: number;
  /** Stored bytes of the distinct chunks they reference (shared chunks count in each VM). */
  storedBytes: number;
  /** usedBytes / storedBytes. */
  dedupRatio: number;
}

export interface StatsResult {
  vms: Record<string, GroupStats>;
  /** All VMs; storedBytes is every object in the repository (chunks, indexes, maps, manifests). */
  total: GroupStats & { chunks: number };
}

/** Logical, used and stored bytes and the dedup ratio, per VM and in total. */
export async function stats(
  repo: Repository,
  options: MaintenanceOptions = {},
): Promise<StatsResult> {
  const { signal } = options;
  const total = {
    snapshots: 0,
    logicalBytes: 0,
    usedBytes: 0,
    storedBytes: 0,
    dedupRatio: 0,
    chunks: 0,
  };
  for (const prefix of [...CHUNK_PREFIXES, 'index/', 'used/', 'snapshots/', 'config']) {
    const chunk = (CHUNK_PREFIXES as readonly string[]).includes(prefix);
    for await (const info of repo.backend.list(prefix, signal)) {
      total.storedBytes += info.size;
      if (chunk) total.chunks++;
    }
  }
  const ratio = (used: number, stored: number) => (stored > 0 ? used / stored : 0);
  const vms: Record<string, GroupStats> = {};
  const manifests = await mapPool(await snapshotIds(repo, signal), repo.concurrency, (sid) =>
    readManifest(repo, sid, signal),
  );
  for (const m of manifests) {
    const g = vms[m.name] ?? {
      snapshots: 0,
      logicalBytes: 0,
      usedBytes: 0,
      storedBytes: 0,
      dedupRatio: 0,
    };
    vms[m.name] = g;
    g.snapshots++;
    g.logicalBytes += m.diskSize;
    g.usedBytes += m.usedBytes;
    total.snapshots++;
    total.logicalBytes += m.diskSize;
    total.usedBytes += m.usedBytes;
  }
  // A VM's stored bytes count each object it references once: its snapshots are walked one
  // after another, and an object's mark is the last VM (numbered from 1) that counted it.
  const names = Object.keys(vms);
  const byVm = names.map((name) => manifests.filter((m) => m.name === name));
  await inPasses(options.keysPerPass ?? DEFAULT_KEYS_PER_PASS, async (keys) => {
    await listPresent(repo, keys, signal);
    const stored = names.map(() => 0);
    for (const [v, group] of byVm.entries()) {
      await forEachEntry(
        repo,
        group,
        (raw, at, depth) =>
          forEachKey(keys, raw, at, depth, true, (handle) => {
            if (keys.mark(handle) === v + 1) return;
            keys.setMark(handle, v + 1);
            stored[v]! += keys.storedSize(handle);
          }),
        signal,
      );
    }
    // Counted only once the pass is complete: a pass that overflows is run again.
    for (const [v, name] of names.entries()) vms[name]!.storedBytes += stored[v]!;
  });
  for (const g of Object.values(vms)) g.dedupRatio = ratio(g.usedBytes, g.storedBytes);
  total.dedupRatio = ratio(total.usedBytes, total.storedBytes);
  return { vms, total };
}
