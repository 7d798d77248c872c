import { DiskubeError, InvalidArgumentError } from '@diskube/core';
import { acquireLock } from './locks.js';
import { ObjectType } from './object.js';
import { chunkKey, getObject, type Repository, snapshotKey, usedMapKey } from './repository.js';
import {
  listSnapshots,
  readIndex,
  readManifest,
  type SnapshotInfo,
  snapshotIds,
  ZERO_ID,
} from './snapshots.js';

export interface VerifyProblem {
  kind: 'missing' | 'damaged';
  /** The object's key (`chunks/ab/ab…`, `index/…`, `snapshots/…`). */
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
  /** Distinct chunks the snapshots reference. */
  chunksReferenced: number;
  /** Chunks read and re-hashed (`readData`). */
  chunksRead: number;
  problems: VerifyProblem[];
}

/** Each chunk id of snapshot `m`, in order, with its position. */
async function* chunksOf(
  repo: Repository,
  m: SnapshotInfo,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  for (let n = 0; n < m.indexes.length; n++) {
    for (const id of await readIndex(repo, m, n, signal)) if (id !== ZERO_ID) yield id;
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

/**
 * Check the repository: every manifest, index object and used map is read and re-hashed, and
 * every chunk a snapshot references must exist; with `readData` every chunk is read and
 * re-hashed too. Each problem names the object and every snapshot that needs it.
 */
export async function verifyRepository(
  repo: Repository,
  options: {
    readData?: boolean;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<VerifyRepositoryResult> {
  const { signal } = options;
  const present = new Set<string>();
  for await (const info of repo.backend.list('chunks/', signal))
    present.add(info.key.slice(info.key.lastIndexOf('/') + 1));
  const problems = new Map<string, VerifyProblem>();
  const add = (p: VerifyProblem, snapshot: string) => {
    const known = problems.get(p.key);
    if (known) {
      if (!known.snapshots.includes(snapshot)) known.snapshots.push(snapshot);
    } else problems.set(p.key, p);
  };
  const referenced = new Set<string>();
  const ids = await snapshotIds(repo, signal);
  const manifests: SnapshotInfo[] = [];
  for (const sid of ids) {
    let m: SnapshotInfo;
    try {
      m = await readManifest(repo, sid, signal);
    } catch (error) {
      add(problemOf(error, snapshotKey(sid), [sid]), sid);
      continue;
    }
    manifests.push(m);
    for (const uid of m.usedMaps) {
      try {
        await getObject(repo, ObjectType.usedMap, uid, usedMapKey, signal);
      } catch (error) {
        add(problemOf(error, usedMapKey(uid), [sid]), sid);
      }
    }
    for (let n = 0; n < m.indexes.length; n++) {
      let chunkIds: string[];
      try {
        chunkIds = await readIndex(repo, m, n, signal);
      } catch (error) {
        add(problemOf(error, `index/${m.indexes[n]}`, [sid]), sid);
        continue;
      }
      for (const cid of chunkIds) {
        if (cid === ZERO_ID) continue;
        referenced.add(cid);
        if (!present.has(cid)) {
          add(
            {
              kind: 'missing',
              key: chunkKey(cid),
              reason: 'not-found',
              message: `chunk ${cid} is missing`,
              snapshots: [sid],
            },
            sid,
          );
        }
      }
    }
  }
  let chunksRead = 0;
  if (options.readData) {
    const damaged = new Map<string, VerifyProblem>();
    const todo = [...referenced].filter((id) => present.has(id));
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const id = todo[next++]!;
        signal?.throwIfAborted();
        try {
          await getObject(repo, ObjectType.chunk, id, chunkKey, signal);
        } catch (error) {
          damaged.set(id, problemOf(error, chunkKey(id), []));
        }
        chunksRead++;
        options.onProgress?.(chunksRead, todo.length);
      }
    };
    await Promise.all(Array.from({ length: repo.concurrency }, worker));
    if (damaged.size > 0) {
      // Second pass: which snapshots need each damaged chunk.
      for (const m of manifests) {
        for await (const cid of chunksOf(repo, m, signal)) {
          const p = damaged.get(cid);
          if (p && !p.snapshots.includes(m.id)) p.snapshots.push(m.id);
        }
      }
      for (const p of damaged.values()) problems.set(p.key, p);
    }
  }
  return {
    ok: problems.size === 0,
    snapshots: ids.length,
    chunksReferenced: referenced.size,
    chunksRead,
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
 * chunks cannot be marked.
 */
export async function prune(
  repo: Repository,
  options: { dryRun?: boolean; signal?: AbortSignal } = {},
): Promise<PruneResult> {
  const { signal } = options;
  const lock = await acquireLock(repo, true, 'prune', signal);
  try {
    const marked = new Set<string>();
    const ids = await snapshotIds(repo, signal);
    for (const sid of ids) {
      const m = await readManifest(repo, sid, signal);
      for (const id of m.indexes) marked.add(`index/${id}`);
      for (const id of m.usedMaps) marked.add(`used/${id}`);
      for await (const cid of chunksOf(repo, m, signal)) marked.add(chunkKey(cid));
    }
    const result: PruneResult = {
      snapshots: ids.length,
      deletedObjects: 0,
      deletedBytes: 0,
      deletedChunks: 0,
      keptChunks: 0,
      dryRun: options.dryRun ?? false,
    };
    for (const prefix of ['chunks/', 'index/', 'used/']) {
      for await (const info of repo.backend.list(prefix, signal)) {
        if (marked.has(info.key)) {
          if (prefix === 'chunks/') result.keptChunks++;
          continue;
        }
        if (!result.dryRun) await repo.backend.delete(info.key, signal);
        result.deletedObjects++;
        result.deletedBytes += info.size;
        if (prefix === 'chunks/') result.deletedChunks++;
      }
    }
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
  options: { signal?: AbortSignal } = {},
): Promise<StatsResult> {
  const { signal } = options;
  const sizes = new Map<string, number>();
  for await (const info of repo.backend.list('chunks/', signal))
    sizes.set(info.key.slice(info.key.lastIndexOf('/') + 1), info.size);
  let totalStored = 0;
  for (const prefix of ['chunks/', 'index/', 'used/', 'snapshots/', 'config']) {
    for await (const info of repo.backend.list(prefix, signal)) totalStored += info.size;
  }
  const ratio = (used: number, stored: number) => (stored > 0 ? used / stored : 0);
  const vms: Record<string, GroupStats> = {};
  const seen = new Map<string, Set<string>>();
  const total = {
    snapshots: 0,
    logicalBytes: 0,
    usedBytes: 0,
    storedBytes: totalStored,
    dedupRatio: 0,
    chunks: sizes.size,
  };
  for (const sid of await snapshotIds(repo, signal)) {
    const m = await readManifest(repo, sid, signal);
    const g = vms[m.name] ?? {
      snapshots: 0,
      logicalBytes: 0,
      usedBytes: 0,
      storedBytes: 0,
      dedupRatio: 0,
    };
    vms[m.name] = g;
    const mine = seen.get(m.name) ?? new Set<string>();
    seen.set(m.name, mine);
    g.snapshots++;
    g.logicalBytes += m.diskSize;
    g.usedBytes += m.usedBytes;
    total.snapshots++;
    total.logicalBytes += m.diskSize;
    total.usedBytes += m.usedBytes;
    for await (const cid of chunksOf(repo, m, signal)) {
      if (mine.has(cid)) continue;
      mine.add(cid);
      g.storedBytes += sizes.get(cid) ?? 0;
    }
  }
  for (const g of Object.values(vms)) g.dedupRatio = ratio(g.usedBytes, g.storedBytes);
  total.dedupRatio = ratio(total.usedBytes, total.storedBytes);
  return { vms, total };
}
