import { DiskubeError, InvalidArgumentError } from '@diskube/core';
import { type ChunkRef, fetchChunk, keyOfError, refKeys, ZERO_ID } from './chunks.js';
import { acquireLock } from './locks.js';
import { ObjectType } from './object.js';
import { getObject, type Repository, snapshotKey, usedMapKey } from './repository.js';
import {
  listSnapshots,
  readIndex,
  readManifest,
  type SnapshotInfo,
  snapshotIds,
} from './snapshots.js';

/** Prefixes of the objects chunk content lives in: whole chunks and patches. */
const CHUNK_PREFIXES = ['chunks/', 'patches/'] as const;

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
  problems: VerifyProblem[];
}

/** Each non-zero chunk of snapshot `m`, in disk order. */
async function* chunksOf(
  repo: Repository,
  m: SnapshotInfo,
  signal?: AbortSignal,
): AsyncGenerator<ChunkRef> {
  for (let n = 0; n < m.indexes.length; n++) {
    for (const ref of await readIndex(repo, m, n, signal)) if (ref.id !== ZERO_ID) yield ref;
  }
}

/** Every key under the chunk prefixes, with its size. */
async function chunkObjects(repo: Repository, signal?: AbortSignal): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const prefix of CHUNK_PREFIXES) {
    for await (const info of repo.backend.list(prefix, signal)) sizes.set(info.key, info.size);
  }
  return sizes;
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
  const present = await chunkObjects(repo, signal);
  const problems = new Map<string, VerifyProblem>();
  const add = (p: VerifyProblem, snapshot: string) => {
    const known = problems.get(p.key);
    if (known) {
      if (!known.snapshots.includes(snapshot)) known.snapshots.push(snapshot);
    } else problems.set(p.key, p);
  };
  /** Distinct chunks by the key of their top object. */
  const referenced = new Map<string, ChunkRef>();
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
      let refs: ChunkRef[];
      try {
        refs = await readIndex(repo, m, n, signal);
      } catch (error) {
        add(problemOf(error, `index/${m.indexes[n]}`, [sid]), sid);
        continue;
      }
      for (const ref of refs) {
        const keys = refKeys(ref);
        if (keys.length === 0) continue;
        referenced.set(keys[0]!, ref);
        for (const key of keys) {
          if (present.has(key)) continue;
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
        }
      }
    }
  }
  let chunksRead = 0;
  if (options.readData) {
    const damaged = new Map<string, VerifyProblem>();
    const toRead = [...referenced.entries()].filter(([, ref]) =>
      refKeys(ref).every((key) => present.has(key)),
    );
    let next = 0;
    const worker = async () => {
      while (next < toRead.length) {
        const [top, ref] = toRead[next++]!;
        signal?.throwIfAborted();
        try {
          await fetchChunk(repo, ref, signal);
        } catch (error) {
          const key = keyOfError(error, top);
          if (!damaged.has(key)) damaged.set(key, problemOf(error, key, []));
        }
        chunksRead++;
        options.onProgress?.(chunksRead, toRead.length);
      }
    };
    await Promise.all(Array.from({ length: repo.concurrency }, worker));
    if (damaged.size > 0) {
      // Second pass: which snapshots need each damaged object.
      for (const m of manifests) {
        for await (const ref of chunksOf(repo, m, signal)) {
          for (const key of refKeys(ref)) {
            const p = damaged.get(key);
            if (p && !p.snapshots.includes(m.id)) p.snapshots.push(m.id);
          }
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
      for await (const ref of chunksOf(repo, m, signal))
        for (const key of refKeys(ref)) marked.add(key);
    }
    const result: PruneResult = {
      snapshots: ids.length,
      deletedObjects: 0,
      deletedBytes: 0,
      deletedChunks: 0,
      keptChunks: 0,
      dryRun: options.dryRun ?? false,
    };
    for (const prefix of [...CHUNK_PREFIXES, 'index/', 'used/']) {
      const chunk = (CHUNK_PREFIXES as readonly string[]).includes(prefix);
      for await (const info of repo.backend.list(prefix, signal)) {
        if (marked.has(info.key)) {
          if (chunk) result.keptChunks++;
          continue;
        }
        if (!result.dryRun) await repo.backend.delete(info.key, signal);
        result.deletedObjects++;
        result.deletedBytes += info.size;
        if (chunk) result.deletedChunks++;
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
  const sizes = await chunkObjects(repo, signal);
  let totalStored = 0;
  for (const prefix of [...CHUNK_PREFIXES, 'index/', 'used/', 'snapshots/', 'config']) {
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
    for await (const ref of chunksOf(repo, m, signal)) {
      for (const key of refKeys(ref)) {
        if (mine.has(key)) continue;
        mine.add(key);
        g.storedBytes += sizes.get(key) ?? 0;
      }
    }
  }
  for (const g of Object.values(vms)) g.dedupRatio = ratio(g.usedBytes, g.storedBytes);
  total.dedupRatio = ratio(total.usedBytes, total.storedBytes);
  return { vms, total };
}
