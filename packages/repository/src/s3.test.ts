// S3-specific behaviour, against real Swift s3api servers: the run's shared one
// (scripts/swift-global-setup.ts) and, for the outage test, a private one this file stops.
import { InvalidArgumentError, IoError } from '@diskube/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createBucket, createSwift, type Swift } from '../scripts/swift-s3.mjs';
import { isNotFound } from './backend.js';
import {
  collect,
  makeS3Backend,
  makeTestBucket,
  rejection,
  sameBytes,
} from './backends.test-support.js';
import { parseS3Url, type S3RetryEvent, s3Backend } from './s3.js';

const skip = inject('s3').skip;

function filled(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

describe('parseS3Url', () => {
  it('splits bucket and prefix, normalising the trailing slash', () => {
    expect(parseS3Url('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://bucket/')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://my.bucket-1/fleet')).toEqual({
      bucket: 'my.bucket-1',
      prefix: 'fleet/',
    });
    expect(parseS3Url('s3://b1/a/b_c/')).toEqual({ bucket: 'b1', prefix: 'a/b_c/' });
  });

  it('rejects what is not s3://bucket/prefix with InvalidArgumentError bad-s3-url', () => {
    for (const url of [
      '',
      'bucket/prefix',
      'https://bucket/prefix',
      's3://',
      's3://b',
      's3:///prefix',
      's3://bu cket/x',
      's3://bucket//x',
      's3://bucket/a/../b',
      's3://bucket/a b',
    ]) {
      let err: unknown;
      try {
        parseS3Url(url);
      } catch (e) {
        err = e;
      }
      expect(InvalidArgumentError.isInstance(err), url).toBe(true);
      expect((err as InvalidArgumentError).reason).toBe('bad-s3-url');
    }
  });
});

describe.skipIf(skip)('S3 backend on Swift s3api', () => {
  it('keeps repositories under different prefixes of one bucket apart', async () => {
    const bucket = await makeTestBucket();
    const a = await makeS3Backend({ url: `s3://${bucket}/fleet` });
    const b = await makeS3Backend({ url: `s3://${bucket}/fleet-2/` });
    expect(a.location).toBe(`s3://${bucket}/fleet`);
    await a.put('config', filled(10, 1));
    await b.put('config', filled(20, 2));
    await b.put('chunks/aa/x', filled(3, 3));
    expect(await collect(a.list(''))).toMatchObject([{ key: 'config', size: 10 }]);
    expect((await collect(b.list(''))).map((o) => o.key).sort()).toEqual(['chunks/aa/x', 'config']);
    expect(sameBytes(await a.get('config'), filled(10, 1))).toBe(true);
    await a.close();
    await b.close();
  });

  it('deleteMany removes keys in batches (DeleteObjects with Content-MD5), missing ones too', async () => {
    // Three batches of at most 100 keys: the batching, without 1000 slow PUTs on a loaded machine.
    const backend = await makeS3Backend({ deleteBatchSize: 100 });
    const keys = Array.from(
      { length: 250 },
      (_, i) => `chunks/${(i % 7).toString().padStart(2, '0')}/${i}`,
    );
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < keys.length) {
          const key = keys[next++] as string;
          await backend.put(key, filled(5, 9));
        }
      }),
    );
    await backend.put('config', filled(5, 1));
    await backend.deleteMany([...keys, 'chunks/00/never-written']);
    expect((await collect(backend.list(''))).map((o) => o.key)).toEqual(['config']);
    await backend.close();
  });

  it('takes credentials and endpoint from the standard AWS_* variables', async () => {
    const server = inject('s3');
    const bucket = await makeTestBucket();
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_ENDPOINT_URL_S3: server.endpoint,
      AWS_REGION: server.region,
    });
    try {
      const backend = s3Backend({ url: `s3://${bucket}/env` });
      await backend.put('config', filled(7, 7));
      expect(await backend.head('config')).toMatchObject({ size: 7 });
      await backend.close();
    } finally {
      for (const name of Object.keys(process.env)) {
        if (!(name in saved)) delete process.env[name];
      }
      Object.assign(process.env, saved);
    }
  });

  it('wrong credentials: IoError access-denied at once, naming the endpoint and the operation', async () => {
    const server = inject('s3');
    const retries: S3RetryEvent[] = [];
    const backend = await makeS3Backend({
      credentials: { accessKeyId: 'test:tester', secretAccessKey: 'not-the-key' },
      onRetry: (e) => retries.push(e),
    });
    const err = await rejection(backend.put('config', filled(3, 1)));
    expect(IoError.isInstance(err)).toBe(true);
    expect((err as IoError).reason).toBe('access-denied');
    expect((err as IoError).message).toContain(server.endpoint);
    expect((err as IoError).message).toContain('PUT');
    expect((err as IoError).message).toContain('config');
    expect(retries).toEqual([]);
    await backend.close();
  });

  it('a missing bucket is IoError no-such-bucket', async () => {
    const backend = await makeS3Backend({ url: 's3://no-such-bucket-here/repo' });
    const err = await rejection(backend.put('config', filled(3, 1)));
    expect((err as IoError).reason).toBe('no-such-bucket');
    await backend.close();
  });

  it('an aborted signal stops a request', async () => {
    const backend = await makeS3Backend();
    const controller = new AbortController();
    controller.abort(new Error('stopped by the test'));
    const err = await rejection(backend.put('config', filled(3, 1), controller.signal));
    expect((err as Error).message).toBe('stopped by the test');
    expect(await backend.head('config')).toBeUndefined();
    await backend.close();
  });
});

describe.skipIf(skip)('S3 backend when the server goes away', () => {
  let swift: Swift;
  let bucket: string;

  beforeAll(async () => {
    swift = await createSwift();
    await swift.start();
    bucket = 'outage';
    await createBucket(swift.endpoint, bucket);
  });

  afterAll(async () => {
    await swift?.destroy();
  });

  it('retries, then fails with IoError unreachable; the interrupted put is never partly visible', async () => {
    const retries: S3RetryEvent[] = [];
    const options = {
      url: `s3://${bucket}/repo`,
      endpoint: swift.endpoint,
      credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
      maxAttempts: 4,
      baseDelayMs: 100,
      maxDelayMs: 400,
      connectTimeoutMs: 1_000,
      idleTimeoutMs: 2_000,
    };
    const object = (i: number) => filled(4 * 1024 * 1024, i + 1);
    // The first objects go in through a client with the default timeouts: on a loaded machine a
    // 4 MiB put (fsync'd by Swift) can outlast the short idle timeout below and be retried,
    // which is not what this test counts.
    const { idleTimeoutMs: _short, ...defaults } = options;
    const setup = s3Backend(defaults);
    for (let i = 0; i < 3; i++) await setup.put(`chunks/00/${i}`, object(i));
    await setup.close();
    const backend = s3Backend({ ...options, onRetry: (e) => retries.push(e) });

    // The fourth put is under way when every server dies (SIGKILL, as in a crash).
    const started = performance.now();
    const interrupted = rejection(backend.put('chunks/00/3', object(3)));
    await swift.stop({ kill: true });
    const err = await interrupted;
    const elapsed = performance.now() - started;

    expect(IoError.isInstance(err), String(err)).toBe(true);
    expect((err as IoError).reason).toBe('unreachable');
    expect((err as IoError).message).toContain(swift.endpoint);
    expect((err as IoError).message).toContain('PUT');
    expect((err as IoError).message).toContain('after 4 attempts');
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    // Bounded: three backoffs of at most 400 ms, connections refused at once, plus stop().
    expect(elapsed).toBeLessThan(20_000);

    // A read while the store is down fails the same way; an abort cuts its retries short.
    const slow = s3Backend({ ...options, maxAttempts: 20, baseDelayMs: 2_000, maxDelayMs: 2_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('gave up')), 300);
    expect(((await rejection(slow.get('chunks/00/0', controller.signal))) as Error).message).toBe(
      'gave up',
    );
    await slow.close();

    // Back up on the same data: the completed puts are whole, the interrupted one is whole or
    // absent.
    await swift.start();
    for (let i = 0; i < 3; i++) {
      expect(sameBytes(await backend.get(`chunks/00/${i}`), object(i))).toBe(true);
    }
    const info = await backend.head('chunks/00/3');
    if (info !== undefined) {
      expect(sameBytes(await backend.get('chunks/00/3'), object(3))).toBe(true);
    } else {
      expect(isNotFound(await rejection(backend.get('chunks/00/3')))).toBe(true);
    }
    await backend.close();
  });
});
