import { CorruptError, InvalidArgumentError, IoError, UnsupportedError } from '@diskube/core';
import { type Backend, isNotFound } from './backend.js';
import {
  type ChunkCodec,
  decodeObject,
  encodeObject,
  ObjectType,
  sha256Hex,
  toHex,
} from './object.js';
import { zstdCodec } from './zstd.js';

/** The repository format this library writes and the newest it reads. */
export const REPOSITORY_VERSION = 2;
/** The chunk size of a new repository on a backend that names none (a local directory). */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/** Chunk ids per index object (SPEC.md "Index objects"): 512 KiB of ids each. */
export const CHUNKS_PER_INDEX = 16384;

export interface RepositoryConfig {
  format: 'diskube-repository';
  version: number;
  /** Bytes per chunk, a power of two. */
  chunkSize: number;
  /** 32 hex digits, random at init. */
  id: string;
  created: string;
}

/** Who takes locks: recorded in lock objects so a stale one can be judged. */
export interface LockOwner {
  host: string;
  pid: number;
  /**
   * The process-id namespace `pid` lives in (Linux: the `/proc/self/ns/pid` link), so that
   * containers sharing a host name do not judge each other's pids; omit when unknown.
   */
  pidNamespace?: string;
  /** True/false if the process `pid` on this host is alive; omit when that cannot be told. */
  isAlive?: (pid: number) => boolean;
}

/**
 * Where a client keeps copies of the repository's snapshot manifests (keys `snapshots/…`), so
 * that listing snapshots and finding a VM's parent do not fetch every manifest again, and the
 * block digest tables of chunks it stored over a parent (keys `digests/…`, SPEC.md "Block digest
 * cache"), so that the next backup makes their patches without fetching them. Neither ever
 * changes under its key (a manifest's key is the SHA-256 of its content, checked on every read
 * from here too; a table carries its own check), so a copy is never stale; a cache that fails or
 * returns damaged bytes only costs a fetch. `retain`, when given, drops every `snapshots/` entry
 * whose key is not in `keys` (snapshots forgotten meanwhile), and may leave other entries;
 * `sweep` lets a backup drop block digest tables not written for 30 days (a day apart at most).
 */
export interface ObjectCache {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  retain?(keys: ReadonlySet<string>): Promise<void>;
  /** Drop every entry under `prefix` written before `before` (ms since the epoch). */
  sweep?(prefix: string, before: number): Promise<void>;
}

export interface OpenOptions {
  /** Per-object compression; default zstd level 3. */
  codec?: ChunkCodec;
  /** Default `{ host: 'unknown', pid: 0 }` (its locks are judged stale only by age). */
  owner?: LockOwner;
  /** Parallel requests (uploads, fetches). Default 8. */
  concurrency?: number;
  /**
   * The cache of manifests and block digest tables for the repository with `config` (its `id`,
   * say). Default none.
   */
  cache?: (config: RepositoryConfig) => ObjectCache | undefined;
  signal?: AbortSignal;
}

export interface Repository {
  readonly backend: Backend;
  readonly config: RepositoryConfig;
  readonly codec: ChunkCodec;
  readonly owner: LockOwner;
  readonly concurrency: number;
  /** Copies of manifests and block digest tables (`OpenOptions.cache`). */
  readonly cache?: ObjectCache | undefined;
}

export interface InitOptions extends OpenOptions {
  /**
   * A power of two from 64 KiB to 16 MiB. Default: the backend's `defaultChunkSize` (4 MiB on
   * S3), else `DEFAULT_CHUNK_SIZE` (1 MiB).
   */
  chunkSize?: number;
}

function checkChunkSize(size: number): void {
  if (
    !Number.isSafeInteger(size) ||
    size < MIN_CHUNK_SIZE ||
    size > MAX_CHUNK_SIZE ||
    (size & (size - 1)) !== 0
  ) {
    throw new InvalidArgumentError(
      `chunk size must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}, not ${size}`,
      { reason: 'bad-chunk-size' },
    );
  }
}

function randomHex(bytes: number): string {
  return toHex(globalThis.crypto.getRandomValues(new Uint8Array(bytes)));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function parseJson(
  bytes: Uint8Array,
  key: string,
  reason: 'bad-config' | 'bad-manifest',
): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (cause) {
    throw new CorruptError(`${key} is not valid JSON`, {
      structure: `repository object ${key}`,
      offset: 0,
      reason,
      cause,
    });
  }
}

/** Create a repository: writes its `config`. Refuses a location that already holds one. */
export async function initRepository(
  backend: Backend,
  options: InitOptions = {},
): Promise<Repository> {
  const chunkSize = options.chunkSize ?? backend.defaultChunkSize ?? DEFAULT_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  if ((await backend.head('config', options.signal)) !== undefined) {
    throw new IoError(`${backend.location} already holds a repository`, { reason: 'exists' });
  }
  const config: RepositoryConfig = {
    format: 'diskube-repository',
    version: REPOSITORY_VERSION,
    chunkSize,
    id: randomHex(16),
    created: new Date().toISOString(),
  };
  await backend.put(
    'config',
    encodeObject(ObjectType.config, encodeJson(config), null),
    options.signal,
  );
  return makeRepository(backend, config, options);
}

function makeRepository(
  backend: Backend,
  config: RepositoryConfig,
  options: OpenOptions,
): Repository {
  return {
    backend,
    config,
    codec: options.codec ?? zstdCodec(),
    owner: options.owner ?? { host: 'unknown', pid: 0 },
    concurrency: options.concurrency ?? 8,
    cache: options.cache?.(config),
  };
}

/**
 * Open an existing repository: reads and checks `config`. A newer format version is refused
 * (UNSUPPORTED `repository-version`); a missing config is IO `no-repository`.
 */
export async function openRepository(
  backend: Backend,
  options: OpenOptions = {},
): Promise<Repository> {
  let bytes: Uint8Array;
  try {
    bytes = await backend.get('config', options.signal);
  } catch (error) {
    if (isNotFound(error)) {
      throw new IoError(
        `${backend.location} is not a diskube repository (no config); create one with "diskube repo init"`,
        {
          reason: 'no-repository',
          cause: error,
        },
      );
    }
    throw error;
  }
  const raw = await decodeObject(
    bytes,
    ObjectType.config,
    'config',
    null,
    options.codec ?? zstdCodec(),
  );
  const value = parseJson(raw, 'config', 'bad-config') as Partial<RepositoryConfig>;
  const bad = (what: string): never => {
    throw new CorruptError(`config: ${what}`, {
      structure: 'repository config',
      offset: 0,
      reason: 'bad-config',
    });
  };
  if (value === null || typeof value !== 'object' || value.format !== 'diskube-repository')
    bad('not a diskube repository config');
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 1)
    bad(`version ${value.version}`);
  if ((value.version as number) > REPOSITORY_VERSION) {
    throw new UnsupportedError(
      `${backend.location} is a version ${value.version} repository; this diskube reads versions up to ${REPOSITORY_VERSION}: upgrade diskube`,
      { structure: 'repository config', offset: 0, reason: 'repository-version' },
    );
  }
  try {
    checkChunkSize(value.chunkSize as number);
  } catch {
    bad(`chunk size ${value.chunkSize}`);
  }
  if (typeof value.id !== 'string') bad('no id');
  return makeRepository(backend, value as RepositoryConfig, options);
}

export const chunkKey = (id: string): string => `chunks/${id.slice(0, 2)}/${id}`;
export const indexKey = (id: string): string => `index/${id}`;
export const usedMapKey = (id: string): string => `used/${id}`;
export const snapshotKey = (id: string): string => `snapshots/${id}`;

/** Store `raw` as a content-addressed object of `type` under `keyOf(id)`; returns id and stored size. */
export async function putObject(
  repo: Repository,
  type: number,
  raw: Uint8Array,
  keyOf: (id: string) => string,
  signal?: AbortSignal,
): Promise<{ id: string; storedBytes: number }> {
  const id = await sha256Hex(raw);
  const object = encodeObject(type, raw, repo.codec);
  await repo.backend.put(keyOf(id), object, signal);
  return { id, storedBytes: object.length };
}

/** Read and check the object `id` of `type`. */
export async function getObject(
  repo: Repository,
  type: number,
  id: string,
  keyOf: (id: string) => string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const key = keyOf(id);
  const bytes = await repo.backend.get(key, signal);
  return decodeObject(bytes, type, key, id, repo.codec);
}

export { randomHex };
