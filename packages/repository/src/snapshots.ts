import { Bitmap } from '@diskube/bitmap';
import { CorruptError, InvalidArgumentError } from '@diskube/core';
import { type ChunkRef, decodeIndex, forEachIndexEntry } from './chunks.js';
import { decodeObject, isObjectId, ObjectType } from './object.js';
import { mapPool } from './pool.js';
import {
  CHUNKS_PER_INDEX,
  getObject,
  indexKey,
  parseJson,
  type Repository,
  snapshotKey,
  usedMapKey,
} from './repository.js';

// Sources: SPEC.md, "Snapshot manifests".

/** Bitmap bytes per used-map object (32 Mi blocks each). */
export const USED_MAP_PIECE = 4 * 1024 * 1024;

export interface SnapshotManifest {
  /** 1: index objects hold whole chunks only; 2: they may name patch chains (SPEC.md). */
  version: 1 | 2;
  /** The VM (group) name. */
  name: string;
  /** ISO time the backup started. */
  time: string;
  host: string;
  /** The snapshot this one was made against, or null. */
  parent: string | null;
  /** The source's facts (container, warnings …), as given. */
  facts: Record<string, unknown>;
  /** The partition/filesystem summary, as given. */
  summary: unknown;
  diskSize: number;
  chunkSize: number;
  blockSize: number;
  /** Bytes the used map keeps (the tail included when used). */
  usedBytes: number;
  tailUsed: boolean;
  /** Used-map objects, in order; their bytes concatenated are the LSB-first bitmap. */
  usedMaps: string[];
  usedBlockCount: number;
  chunkCount: number;
  /** Index objects in order, CHUNKS_PER_INDEX ids each (the last may hold fewer). */
  indexes: string[];
  /** Whole chunks and patches this backup uploaded, and their stored bytes. */
  newChunks: number;
  /** Absent in version 1 manifests. */
  newPatches?: number;
  newStoredBytes: number;
}

export interface SnapshotInfo extends SnapshotManifest {
  id: string;
}

function checkManifest(value: unknown, id: string): SnapshotManifest {
  const key = snapshotKey(id);
  const bad = (what: string): never => {
    throw new CorruptError(`${key}: ${what}`, {
      structure: `snapshot manifest ${id}`,
      offset: 0,
      reason: 'bad-manifest',
    });
  };
  if (value === null || typeof value !== 'object') bad('not an object');
  const m = value as SnapshotManifest;
  if (m.version !== 1 && m.version !== 2) bad(`manifest version ${m.version}`);
  if (typeof m.name !== 'string' || typeof m.time !== 'string') bad('no name or time');
  for (const field of [
    'diskSize',
    'chunkSize',
    'blockSize',
    'usedBlockCount',
    'chunkCount',
  ] as const) {
    if (!Number.isSafeInteger(m[field]) || m[field] < 0) bad(`${field} ${m[field]}`);
  }
  if (m.chunkSize <= 0 || m.blockSize <= 0) bad('zero chunk or block size');
  // The used map covers whole blocks of the disk: a reader allocates one bit per block.
  if (m.usedBlockCount > Math.floor(m.diskSize / m.blockSize))
    bad(`${m.usedBlockCount} used-map blocks of ${m.blockSize} bytes on a ${m.diskSize}-byte disk`);
  if (m.chunkCount !== Math.ceil(m.diskSize / m.chunkSize)) bad(`chunk count ${m.chunkCount}`);
  if (!Array.isArray(m.indexes) || m.indexes.length !== Math.ceil(m.chunkCount / CHUNKS_PER_INDEX))
    bad('index list does not cover the chunks');
  if (
    !Array.isArray(m.usedMaps) ||
    m.usedMaps.length !== Math.ceil(Math.ceil(m.usedBlockCount / 8) / USED_MAP_PIECE)
  )
    bad('used-map list does not cover the blocks');
  for (const ref of [...m.indexes, ...m.usedMaps])
    if (typeof ref !== 'string' || !isObjectId(ref)) bad(`bad object id ${ref}`);
  if (m.parent !== null && (typeof m.parent !== 'string' || !isObjectId(m.parent)))
    bad('bad parent id');
  return m;
}

/**
 * Read and check one manifest: from `repo.cache` when it holds an intact copy (not with
 * `fresh`, which reads the repository's own, as verify must), else from the repository, then
 * kept in the cache. A cache that fails is passed over.
 */
export async function readManifest(
  repo: Repository,
  id: string,
  signal?: AbortSignal,
  fresh = false,
): Promise<SnapshotInfo> {
  const key = snapshotKey(id);
  const cache = fresh ? undefined : repo.cache;
  const parse = (raw: Uint8Array) => ({
    id,
    ...checkManifest(parseJson(raw, key, 'bad-manifest'), id),
  });
  const cached = await cache?.get(key).catch(() => undefined);
  if (cached) {
    try {
      return parse(await decodeObject(cached, ObjectType.manifest, key, id, repo.codec));
    } catch {
      await cache?.delete(key).catch(() => {});
    }
  }
  const bytes = await repo.backend.get(key, signal);
  const info = parse(await decodeObject(bytes, ObjectType.manifest, key, id, repo.codec));
  await repo.cache?.put(key, bytes).catch(() => {});
  return info;
}

/** The ids of every snapshot manifest present. */
export async function snapshotIds(repo: Repository, signal?: AbortSignal): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of repo.backend.list('snapshots/', signal)) {
    const id = info.key.slice('snapshots/'.length);
    if (isObjectId(id)) ids.push(id);
  }
  return ids;
}

/** Every snapshot (of VM `name` if given), oldest first. */
export async function listSnapshots(
  repo: Repository,
  options: { name?: string; signal?: AbortSignal } = {},
): Promise<SnapshotInfo[]> {
  const ids = await snapshotIds(repo, options.signal);
  const all = await mapPool(ids, repo.concurrency, (id) => readManifest(repo, id, options.signal));
  // Forgotten snapshots leave the cache too.
  await repo.cache?.retain?.(new Set(ids.map(snapshotKey))).catch(() => {});
  const out = all.filter((m) => options.name === undefined || m.name === options.name);
  return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
}

/** `vm@latest`, a full snapshot id, or a unique prefix of one (at least 8 hex digits). */
export async function resolveSnapshot(
  repo: Repository,
  spec: string,
  signal?: AbortSignal,
): Promise<SnapshotInfo> {
  const at = spec.lastIndexOf('@');
  if (at > 0 && spec.slice(at + 1) === 'latest') {
    const name = spec.slice(0, at);
    const all = await listSnapshots(repo, { name, ...(signal ? { signal } : {}) });
    const latest = all.at(-1);
    if (!latest)
      throw new InvalidArgumentError(`no snapshot of "${name}" in ${repo.backend.location}`, {
        reason: 'no-snapshot',
      });
    return latest;
  }
  if (/^[0-9a-f]{8,64}$/.test(spec)) {
    const matches = (await snapshotIds(repo, signal)).filter((id) => id.startsWith(spec));
    if (matches.length === 1) return readManifest(repo, matches[0]!, signal);
    if (matches.length > 1)
      throw new InvalidArgumentError(`snapshot id prefix ${spec} is ambiguous`, {
        reason: 'usage',
      });
  }
  throw new InvalidArgumentError(
    `no snapshot "${spec}" in ${repo.backend.location} (give <vm>@latest or a snapshot id)`,
    {
      reason: 'no-snapshot',
    },
  );
}

/** The snapshot's used map (one bit per block). */
export async function readUsedMap(
  repo: Repository,
  m: SnapshotInfo,
  signal?: AbortSignal,
): Promise<Bitmap> {
  const bytes = new Uint8Array(Math.ceil(m.usedBlockCount / 8));
  let at = 0;
  for (const id of m.usedMaps) {
    const piece = await getObject(repo, ObjectType.usedMap, id, usedMapKey, signal);
    if (at + piece.length > bytes.length) {
      throw new CorruptError(`used map of ${m.id} is longer than its block count`, {
        structure: `used map ${id}`,
        offset: 0,
        reason: 'bad-length',
      });
    }
    bytes.set(piece, at);
    at += piece.length;
  }
  if (at !== bytes.length) {
    throw new CorruptError(`used map of ${m.id} is shorter than its block count`, {
      structure: `used map`,
      offset: at,
      reason: 'bad-length',
    });
  }
  return Bitmap.fromBytes(bytes, m.usedBlockCount);
}

/** Index object `n` of a snapshot: its chunks (ZERO_ID for all-zero chunks), in disk order. */
export async function readIndex(
  repo: Repository,
  m: SnapshotInfo,
  n: number,
  signal?: AbortSignal,
): Promise<ChunkRef[]> {
  const id = m.indexes[n]!;
  const raw = await getObject(repo, ObjectType.index, id, indexKey, signal);
  const expected = Math.min(CHUNKS_PER_INDEX, m.chunkCount - n * CHUNKS_PER_INDEX);
  return decodeIndex(raw, expected, m.version, `index object ${id}`);
}

/**
 * The content `raw` of index object `n` of `m`, checked, with `each` called for every entry's
 * place in it (`forEachIndexEntry`): no strings or objects per entry.
 */
export function indexEntries(
  m: SnapshotInfo,
  n: number,
  raw: Uint8Array,
  each: (raw: Uint8Array, at: number, depth: number) => void,
): void {
  const id = m.indexes[n]!;
  const expected = Math.min(CHUNKS_PER_INDEX, m.chunkCount - n * CHUNKS_PER_INDEX);
  forEachIndexEntry(raw, expected, m.version, `index object ${id}`, (at, depth) =>
    each(raw, at, depth),
  );
}
