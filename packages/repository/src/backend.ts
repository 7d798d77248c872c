import { IoError } from '@diskube/core';

/**
 * Where a repository's objects live. Every backend stores immutable objects under string keys
 * (`config`, `chunks/ab/abcdef…`, `snapshots/…`, `locks/…`): the repository never rewrites an
 * object in place, so no backend needs conditional writes (`If-None-Match`), which many
 * S3-compatible stores reject.
 *
 * Keys are relative, `/`-separated, and made of `[A-Za-z0-9._-]` segments. A backend rejects any
 * other key with an `InvalidArgumentError`.
 *
 * Errors: a missing object is an `IoError` with reason `not-found` (callers test for it with
 * `isNotFound`); any other failure of the store (network, permissions, a full disk) is an
 * `IoError` with a reason of the backend's own, after the backend's retries are spent.
 */
export interface Backend {
  /** Human-readable location (`/srv/repo`, `s3://bucket/prefix`), for messages. */
  readonly location: string;
  /**
   * The chunk size `initRepository` gives a new repository here when the caller names none
   * (default `DEFAULT_CHUNK_SIZE`). An object store, where every request costs a round trip, CPU
   * on the server and often money, prefers fewer, larger objects.
   */
  readonly defaultChunkSize?: number;
  /**
   * True where a request crosses a network (object storage): a backup then keeps block digest
   * tables in the client cache rather than fetch a parent's chunk again (SPEC.md, "Block digest
   * cache"). A local directory reads a chunk for less than a table costs to keep.
   */
  readonly remote?: boolean;
  /** The whole object. */
  get(key: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** `length` bytes at `offset` of the object; fewer only if the object ends first. */
  getRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * Store `data` under `key`, atomically: a reader sees the whole object or none of it, never a
   * prefix. Writing a key that exists replaces it (the repository only does that with identical
   * content). Resolves once the object is durable (fsync'd, or acknowledged by the store).
   */
  put(key: string, data: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** The object's size, or `undefined` if it does not exist. */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined>;
  /** Every key that starts with `prefix`, in no promised order, paged internally. */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Remove the object; removing a missing object is not an error. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /** Release connections or handles. */
  close?(): Promise<void>;
}

/**
 * The chunk size of a new repository on object storage (the S3 backend's `defaultChunkSize`):
 * a quarter of the requests of 1 MiB chunks for about the same stored bytes (SPEC.md, `config`).
 */
export const OBJECT_STORE_CHUNK_SIZE = 4 * 1024 * 1024;

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Last modification time in milliseconds since the epoch, if the store reports it. */
  readonly mtimeMs?: number;
}

const KEY = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** True if `key` is a well-formed object key (see `Backend`). */
export function isValidKey(key: string): boolean {
  return key.length <= 512 && KEY.test(key) && !key.split('/').some((s) => s === '.' || s === '..');
}

/** True if `err` is a backend's "no such object" (`IoError` with reason `not-found`). */
export function isNotFound(err: unknown): boolean {
  return IoError.isInstance(err) && (err as IoError).reason === 'not-found';
}
