import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { InvalidArgumentError, IoError } from '@diskube/core';
import { type Backend, isValidKey, OBJECT_STORE_CHUNK_SIZE, type ObjectInfo } from './backend.js';

/**
 * The `reason` values the S3 backend gives its errors, beside `not-found` (the `Backend`
 * contract) and `bad-key` (a malformed key, as in every backend). IO errors name the endpoint,
 * the operation and the object in their message.
 */
export const S3_REASONS = Object.freeze([
  // IO: the object or the bucket is missing.
  'not-found',
  'no-such-bucket',
  // IO: the store refused the request (wrong credentials, no permission, a bad request).
  'access-denied',
  'request-failed',
  // IO: after every retry: the store could not be reached, or kept failing (5xx, throttling).
  'unreachable',
  'server-error',
  // IO: an answer that contradicts the request: a body shorter or longer than announced, an
  // object above `maxObjectBytes`, a listing that does not advance.
  'short-read',
  'too-large',
  'bad-listing',
  // INVALID_ARGUMENT
  'bad-key',
  'bad-range',
  'bad-s3-url',
] as const);
export type S3Reason = (typeof S3_REASONS)[number];

export interface S3Location {
  readonly bucket: string;
  /** Key prefix of the repository's objects: empty, or `/`-separated segments ending in `/`. */
  readonly prefix: string;
}

const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** A `list` prefix: a key, a key's leading part, or a `/`-terminated folder of keys. */
const LIST_PREFIX = /^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/;

/**
 * `s3://bucket` or `s3://bucket/some/prefix` (a trailing `/` is optional): the bucket and the
 * key prefix under which the repository's objects live.
 */
export function parseS3Url(url: string): S3Location {
  const bad = (why: string) =>
    new InvalidArgumentError(`bad S3 URL "${url}": ${why} (expected s3://bucket/prefix)`, {
      reason: 'bad-s3-url',
    });
  if (!url.startsWith('s3://')) throw bad('it does not start with s3://');
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket)) throw bad(`"${bucket}" is not a bucket name`);
  const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/$/, '');
  if (path === '') return { bucket, prefix: '' };
  const segments = path.split('/');
  if (segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) {
    throw bad('the prefix must be /-separated segments of [A-Za-z0-9._-]');
  }
  return { bucket, prefix: `${path}/` };
}

export interface S3BackendOptions {
  /** `s3://bucket/prefix`. The bucket must exist. */
  url: string;
  /**
   * Endpoint of a non-AWS store (`http://127.0.0.1:8080`). Default: the SDK's (AWS, or
   * `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`).
   */
  endpoint?: string;
  /** Default: `AWS_REGION`, else `us-east-1` (what Swift's s3api and MinIO answer to). */
  region?: string;
  /** Default: the SDK's chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Bucket in the path, not the host name. Default true: most non-AWS stores need it. */
  forcePathStyle?: boolean;
  /** Attempts per operation, the first included. Default 6. */
  maxAttempts?: number;
  /** First retry delay; it doubles per attempt, with jitter, up to `maxDelayMs`. Default 200. */
  baseDelayMs?: number;
  /** Default 10 000. */
  maxDelayMs?: number;
  /** Time to establish a connection before the attempt fails. Default 5 000. */
  connectTimeoutMs?: number;
  /** Time a connection may stay silent before the attempt fails. Default 30 000. */
  idleTimeoutMs?: number;
  /** Largest object `get` accepts (memory bound). Default 256 MiB. */
  maxObjectBytes?: number;
  /** Keys per DeleteObjects request in `deleteMany`. Default 1000, the S3 maximum. */
  deleteBatchSize?: number;
  /** Called before each retry (for progress messages and tests). */
  onRetry?: (event: S3RetryEvent) => void;
}

export interface S3RetryEvent {
  readonly operation: string;
  readonly key: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: unknown;
}

/** The S3 backend: a `Backend` plus a batched delete (prune removes many chunks). */
export interface S3Backend extends Backend {
  readonly bucket: string;
  readonly prefix: string;
  /** Remove every key (`deleteBatchSize` per request); missing keys are not an error. */
  deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** What became of a failed request: retried, or classified into a final reason. */
function classify(err: unknown): { retry: boolean; reason: S3Reason } {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (status === undefined || status === 0) {
    // No HTTP answer: refused, reset, timed out, or a body cut short. All are transient.
    return { retry: true, reason: 'unreachable' };
  }
  if (name === 'NoSuchKey' || (status === 404 && name === 'NotFound')) {
    return { retry: false, reason: 'not-found' };
  }
  if (name === 'NoSuchBucket') return { retry: false, reason: 'no-such-bucket' };
  if (status >= 500 || status === 408 || status === 429 || name === 'SlowDown') {
    return { retry: true, reason: 'server-error' };
  }
  if (status === 401 || status === 403) return { retry: false, reason: 'access-denied' };
  if (status === 404) return { retry: false, reason: 'not-found' };
  return { retry: false, reason: 'request-failed' };
}

function explain(err: unknown): string {
  const e = (err ?? {}) as SdkError & { cause?: SdkError };
  const status = e.$metadata?.httpStatusCode;
  const parts = [status ? `HTTP ${status}` : undefined, e.name, e.code ?? e.cause?.code];
  const detail = e.message && e.message !== 'UnknownError' ? e.message : undefined;
  return [...new Set(parts.filter((p) => p && p !== 'Error')), detail].filter(Boolean).join(' ');
}

function abortable(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function checkKey(key: string): void {
  if (!isValidKey(key)) {
    throw new InvalidArgumentError(`bad object key "${key}"`, { reason: 'bad-key' });
  }
}

function envRegion(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
    ?.env;
  return env?.AWS_REGION || env?.AWS_DEFAULT_REGION || undefined;
}

/** A failed read of an object body, retried like a dropped connection. */
class BodyError extends Error {
  override name = 'BodyError';
}

/**
 * A repository on S3-compatible object storage (AWS S3, Swift's s3api, MinIO, Ceph RGW …).
 *
 * Every request is retried with exponential backoff on network errors, 5xx and throttling; once
 * the attempts are spent it fails with an `IoError` naming the endpoint, the operation and the
 * key. A PUT carries `Content-MD5`, so the store rejects a damaged upload, and an S3 PUT is
 * atomic: a reader sees the whole object or nothing. No conditional writes are used.
 */
export function s3Backend(options: S3BackendOptions): S3Backend {
  const { bucket, prefix } = parseS3Url(options.url);
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 6));
  const baseDelayMs = options.baseDelayMs ?? 200;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const maxObjectBytes = options.maxObjectBytes ?? 256 * 1024 * 1024;
  const batch = Math.min(1000, Math.max(1, Math.floor(options.deleteBatchSize ?? 1000)));
  const endpointName = options.endpoint ?? 'the default S3 endpoint';
  const location = `s3://${bucket}${prefix ? `/${prefix.slice(0, -1)}` : ''}`;

  const client = new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region ?? envRegion() ?? 'us-east-1',
    ...(options.credentials ? { credentials: options.credentials } : {}),
    forcePathStyle: options.forcePathStyle ?? true,
    // Retries are ours (below), so that every failure, network errors included, follows one
    // policy and ends in one clear error.
    maxAttempts: 1,
    // Otherwise the SDK sends PUT bodies aws-chunked with trailing checksums, which many
    // S3-compatible stores (Swift's s3api among them) answer with 501.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: options.connectTimeoutMs ?? 5_000,
      requestTimeout: options.idleTimeoutMs ?? 30_000,
    },
  });
  const md5 = async (data: Uint8Array | string): Promise<string> => {
    const hash = new client.config.md5();
    hash.update(data);
    return client.config.base64Encoder(await hash.digest());
  };
  // DeleteObjects requires Content-MD5, which the SDK no longer sends (it sends an
  // x-amz-checksum-* header that Swift's s3api ignores). Added at the build step, after the
  // body is serialized and before the request is signed.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && typeof request.body === 'string') {
        request.headers = { ...request.headers, 'content-md5': await md5(request.body) };
      }
      // PUT bodies are not hashed a second time for the signature: Content-MD5 (sent with
      // every PUT) already makes the store refuse a body damaged in transit, and every object
      // but the config and locks is checked by its SHA-256 when read. Hashing 1 MiB bodies
      // twice was a fifth of the client's CPU on loopback.
      if (context.commandName === 'PutObjectCommand') {
        request.headers = { ...request.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
      }
      return next(args);
    },
    { step: 'build', name: 'diskubeDeleteObjectsContentMd5' },
  );

  const fail = (operation: string, key: string, reason: S3Reason, err: unknown, attempts = 1) =>
    new IoError(
      `S3 ${operation} of "${key}" in ${location} at ${endpointName} failed` +
        `${attempts > 1 ? ` after ${attempts} attempts` : ''}: ${explain(err)}`,
      { reason, cause: err },
    );

  /** Runs `attempt` with the retry policy; `key` is for messages. */
  async function withRetries<T>(
    operation: string,
    key: string,
    signal: AbortSignal | undefined,
    attempt: () => Promise<T>,
  ): Promise<T> {
    for (let n = 1; ; n++) {
      signal?.throwIfAborted();
      try {
        return await attempt();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (InvalidArgumentError.isInstance(err) || IoError.isInstance(err)) throw err;
        const { retry, reason } = classify(err);
        if (!retry) throw fail(operation, key, reason, err, n);
        if (n >= maxAttempts) {
          throw fail(operation, key, err instanceof BodyError ? 'short-read' : reason, err, n);
        }
        const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        options.onRetry?.({ operation, key, attempt: n, delayMs, error: err });
        await abortable(delayMs, signal);
      }
    }
  }

  async function read(
    operation: string,
    key: string,
    range: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    return withRetries(operation, key, signal, async () => {
      const out = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: prefix + key,
          ...(range ? { Range: range } : {}),
        }),
        { abortSignal: signal },
      );
      const announced = out.ContentLength;
      if (announced !== undefined && announced > maxObjectBytes) {
        (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
        throw fail(operation, key, 'too-large', new Error(`${announced} bytes announced`));
      }
      let bytes: Uint8Array;
      try {
        bytes = (await out.Body?.transformToByteArray()) ?? new Uint8Array(0);
      } catch (err) {
        throw new BodyError(`the body was cut short: ${explain(err)}`);
      }
      if (announced !== undefined && bytes.length !== announced) {
        throw new BodyError(`${bytes.length} bytes received of ${announced} announced`);
      }
      return bytes;
    });
  }

  async function head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    checkKey(key);
    try {
      return await withRetries('HEAD', key, signal, async () => {
        const out = await client.send(
          new HeadObjectCommand({ Bucket: bucket, Key: prefix + key }),
          {
            abortSignal: signal,
          },
        );
        return {
          key,
          size: out.ContentLength ?? 0,
          ...(out.LastModified ? { mtimeMs: out.LastModified.getTime() } : {}),
        };
      });
    } catch (err) {
      if (IoError.isInstance(err) && err.reason === 'not-found') return undefined;
      throw err;
    }
  }

  async function deleteBatch(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    const label = `${keys[0]} and ${keys.length - 1} more`;
    await withRetries('DELETE', label, signal, async () => {
      const out = await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.map((k) => ({ Key: prefix + k })), Quiet: true },
        }),
        { abortSignal: signal },
      );
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const first = errors[0];
        throw fail('DELETE', first?.Key ?? label, 'request-failed', {
          name: first?.Code,
          message: `${errors.length} of ${keys.length} keys not deleted: ${first?.Message ?? ''}`,
        });
      }
    });
  }

  return {
    location,
    defaultChunkSize: OBJECT_STORE_CHUNK_SIZE,
    remote: true,
    bucket,
    prefix,

    async get(key, signal) {
      checkKey(key);
      return read('GET', key, undefined, signal);
    },

    async getRange(key, offset, length, signal) {
      checkKey(key);
      if (
        !Number.isSafeInteger(offset) ||
        offset < 0 ||
        !Number.isSafeInteger(length) ||
        length < 0
      ) {
        throw new InvalidArgumentError(`bad range ${offset}+${length} of "${key}"`, {
          reason: 'bad-range',
        });
      }
      // An empty range cannot be asked for in HTTP; a HEAD keeps `not-found` for a missing key.
      if (length === 0) {
        if ((await head(key, signal)) === undefined) {
          throw fail('GET', key, 'not-found', {
            name: 'NotFound',
            $metadata: { httpStatusCode: 404 },
          });
        }
        return new Uint8Array(0);
      }
      try {
        return await read('GET', key, `bytes=${offset}-${offset + length - 1}`, signal);
      } catch (err) {
        // 416: the range starts at or after the end of the object (which exists).
        const cause = IoError.isInstance(err) ? (err.cause as SdkError | undefined) : undefined;
        if (cause?.$metadata?.httpStatusCode === 416 || cause?.name === 'InvalidRange') {
          return new Uint8Array(0);
        }
        throw err;
      }
    },

    async put(key, data, signal) {
      checkKey(key);
      const contentMd5 = await md5(data);
      await withRetries('PUT', key, signal, async () => {
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: prefix + key,
            Body: data,
            ContentLength: data.length,
            ContentMD5: contentMd5,
          }),
          { abortSignal: signal },
        );
      });
    },

    head,

    async *list(listPrefix, signal) {
      if (!LIST_PREFIX.test(listPrefix)) {
        throw new InvalidArgumentError(`bad list prefix "${listPrefix}"`, { reason: 'bad-key' });
      }
      let token: string | undefined;
      do {
        const page = await withRetries('LIST', `${listPrefix}*`, signal, () =>
          client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              Prefix: prefix + listPrefix,
              MaxKeys: 1000,
              ...(token ? { ContinuationToken: token } : {}),
            }),
            { abortSignal: signal },
          ),
        );
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(prefix.length);
          // Objects that are not the repository's (another tool's, a foreign name) are skipped.
          if (key === undefined || !object.Key?.startsWith(prefix) || !isValidKey(key)) continue;
          yield {
            key,
            size: object.Size ?? 0,
            ...(object.LastModified ? { mtimeMs: object.LastModified.getTime() } : {}),
          };
        }
        const next = page.IsTruncated ? page.NextContinuationToken : undefined;
        if (page.IsTruncated && (next === undefined || next === token)) {
          throw fail('LIST', `${listPrefix}*`, 'bad-listing', {
            message: 'a truncated page without a new continuation token',
          });
        }
        token = next;
      } while (token !== undefined);
    },

    async delete(key, signal) {
      checkKey(key);
      try {
        await withRetries('DELETE', key, signal, () =>
          client.send(new DeleteObjectCommand({ Bucket: bucket, Key: prefix + key }), {
            abortSignal: signal,
          }),
        );
      } catch (err) {
        if (IoError.isInstance(err) && err.reason === 'not-found') return;
        throw err;
      }
    },

    async deleteMany(keys, signal) {
      for (const key of keys) checkKey(key);
      for (let i = 0; i < keys.length; i += batch) {
        await deleteBatch(keys.slice(i, i + batch), signal);
      }
    },

    async close() {
      client.destroy();
    },
  };
}
