// The backends every backend-dependent test runs over: a local directory and S3 (the private
// Swift s3api that scripts/swift-global-setup.ts starts for the run). Use:
//
//   describe.each(TEST_BACKENDS)('$name backend', (b) => {
//     it.skipIf(b.skip)('…', async () => { const backend = await b.make(); … });
//   });
//
// `make()` gives an empty repository location each call: a fresh directory, or a fresh bucket.
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { createBucket } from '../scripts/swift-s3.mjs';
import type { Backend, ObjectInfo } from './backend.js';
import { localBackend } from './local.js';
import { type S3Backend, type S3BackendOptions, s3Backend } from './s3.js';

export interface S3TestServer {
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Why S3 cases are skipped (Swift not installed, outside CI). */
  skip?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestServer;
    tmpRoot: string;
  }
}

export interface TestBackend {
  readonly name: 'local' | 's3';
  /** Set when this backend cannot run here; tests use `it.skipIf(b.skip)`. */
  readonly skip: string | undefined;
  /** An empty repository location (with a smaller `maxObjectBytes` when given). */
  make(options?: { maxObjectBytes?: number }): Promise<Backend>;
}

let buckets = 0;

/** A fresh, empty bucket on the test Swift; its name. */
export async function makeTestBucket(): Promise<string> {
  const server = inject('s3');
  if (!server.endpoint) throw new Error(server.skip ?? 'no S3 test server');
  const name = `t${process.pid}-${Date.now().toString(36)}-${buckets++}`;
  await createBucket(server.endpoint, name);
  return name;
}

/**
 * An S3 backend on the test Swift, on a fresh bucket unless `url` is given. Retries are quick
 * (the server is local), and can be tuned per test through `overrides`.
 */
export async function makeS3Backend(overrides: Partial<S3BackendOptions> = {}): Promise<S3Backend> {
  const server = inject('s3');
  if (!server.endpoint || !server.accessKeyId || !server.secretAccessKey) {
    throw new Error(server.skip ?? 'no S3 test server');
  }
  const url = overrides.url ?? `s3://${await makeTestBucket()}/repo`;
  return s3Backend({
    endpoint: server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    baseDelayMs: 50,
    maxDelayMs: 1_000,
    ...overrides,
    url,
  });
}

/** A fresh, empty directory under the run's temporary root (removed after the run). */
export function makeTestDirectory(): Promise<string> {
  return mkdtemp(join(inject('tmpRoot'), 'repo-'));
}

export const TEST_BACKENDS: readonly TestBackend[] = [
  {
    name: 'local',
    skip: undefined,
    make: async (options) => localBackend(await makeTestDirectory(), options),
  },
  {
    name: 's3',
    get skip() {
      return inject('s3').skip;
    },
    make: (options) => makeS3Backend(options),
  },
];

/** Byte equality (vitest's deep equality is slow on megabytes). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** The reason `promise` rejects with; fails if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Every item of a listing. */
export async function collect(iterable: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
