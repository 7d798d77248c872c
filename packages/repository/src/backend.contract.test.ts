// The `Backend` contract (backend.ts), run over every backend: a local directory and S3 (a real
// Swift s3api server, started for the run by scripts/swift-global-setup.ts).
import { InvalidArgumentError, IoError } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { type Backend, isNotFound } from './backend.js';
import { collect, rejection, sameBytes, TEST_BACKENDS } from './backends.test-support.js';

function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Runs `task` over `items`, `width` at a time. */
async function pool<T>(items: readonly T[], width: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await task(items[next++] as T);
    }),
  );
}

const BAD_KEYS = [
  '',
  '/chunks/aa',
  'chunks/',
  'chunks//aa',
  '../config',
  'chunks/../config',
  'chunks/./aa',
  'with space',
  'ümlaut',
  'a?b',
  'a\\b',
  'x'.repeat(513),
];

describe.each(TEST_BACKENDS)('$name backend', (b) => {
  const withBackend = (fn: (backend: Backend) => Promise<void>) => async () => {
    const backend = await b.make();
    try {
      await fn(backend);
    } finally {
      await backend.close?.();
    }
  };

  it.skipIf(b.skip)(
    'put then get returns the same bytes; an empty object is empty',
    withBackend(async (backend) => {
      const data = bytes(300_001, 1);
      await backend.put('chunks/ab/object', data);
      expect(sameBytes(await backend.get('chunks/ab/object'), data)).toBe(true);
      await backend.put('empty', new Uint8Array(0));
      expect((await backend.get('empty')).length).toBe(0);
      expect(await backend.head('empty')).toMatchObject({ key: 'empty', size: 0 });
    }),
  );

  it.skipIf(b.skip)(
    'getRange: inside, across the end, at and past the end, empty',
    withBackend(async (backend) => {
      const data = bytes(10_000, 2);
      await backend.put('snapshots/s1', data);
      expect(await backend.getRange('snapshots/s1', 0, 10)).toEqual(data.subarray(0, 10));
      expect(await backend.getRange('snapshots/s1', 4321, 1000)).toEqual(data.subarray(4321, 5321));
      expect(await backend.getRange('snapshots/s1', 9_990, 100)).toEqual(data.subarray(9_990));
      expect((await backend.getRange('snapshots/s1', 10_000, 5)).length).toBe(0);
      expect((await backend.getRange('snapshots/s1', 20_000, 5)).length).toBe(0);
      expect((await backend.getRange('snapshots/s1', 17, 0)).length).toBe(0);
      const missing = await rejection(backend.getRange('snapshots/none', 0, 10));
      expect(isNotFound(missing)).toBe(true);
    }),
  );

  it.skipIf(b.skip)(
    'head gives the size (and a plausible mtime), or undefined',
    withBackend(async (backend) => {
      const before = Date.now();
      await backend.put('config', bytes(1234, 3));
      const info = await backend.head('config');
      expect(info).toMatchObject({ key: 'config', size: 1234 });
      if (info?.mtimeMs !== undefined) {
        // S3 reports seconds; allow clock granularity and small skew.
        expect(Math.abs(info.mtimeMs - before)).toBeLessThan(120_000);
      }
      expect(await backend.head('config.missing')).toBeUndefined();
    }),
  );

  it.skipIf(b.skip)(
    'a missing object is IoError not-found for get and getRange',
    withBackend(async (backend) => {
      for (const attempt of [
        () => backend.get('chunks/00/none'),
        () => backend.getRange('none', 5, 5),
      ]) {
        const err = await rejection(attempt());
        expect(IoError.isInstance(err)).toBe(true);
        expect((err as IoError).reason).toBe('not-found');
        expect(isNotFound(err)).toBe(true);
      }
    }),
  );

  it.skipIf(b.skip)(
    'list by prefix returns every key, across more than one 1000-key page',
    withBackend(async (backend) => {
      const keys = Array.from(
        { length: 1001 },
        (_, i) => `chunks/aa/${i.toString(16).padStart(8, '0')}`,
      );
      await pool(keys, 32, (key) => backend.put(key, bytes(7 + (key.length % 5), 4)));
      await backend.put('chunks/ab/other', bytes(3, 5));
      await backend.put('snapshots/one', bytes(4, 6));
      await backend.put('chunks-like', bytes(5, 7));

      const listed = await collect(backend.list('chunks/aa/'));
      expect(listed.map((o) => o.key).sort()).toEqual([...keys].sort());
      for (const o of listed) expect(o.size).toBe(7 + (o.key.length % 5));

      const chunks = (await collect(backend.list('chunks/'))).map((o) => o.key);
      expect(chunks.length).toBe(keys.length + 1);
      expect(chunks).toContain('chunks/ab/other');
      expect(chunks).not.toContain('chunks-like');
      expect((await collect(backend.list('snapshots/'))).map((o) => o.key)).toEqual([
        'snapshots/one',
      ]);
      expect(await collect(backend.list('locks/'))).toEqual([]);
      expect((await collect(backend.list(''))).length).toBe(keys.length + 3);
    }),
  );

  it.skipIf(b.skip)(
    'delete removes the object; deleting it again, or a missing one, is not an error',
    withBackend(async (backend) => {
      await backend.put('locks/l1', bytes(10, 8));
      await backend.delete('locks/l1');
      expect(await backend.head('locks/l1')).toBeUndefined();
      expect(isNotFound(await rejection(backend.get('locks/l1')))).toBe(true);
      await backend.delete('locks/l1');
      await backend.delete('locks/never-written');
      expect(await collect(backend.list('locks/'))).toEqual([]);
    }),
  );

  it.skipIf(b.skip)(
    'get refuses an object above maxObjectBytes (IO too-large) before reading it; a range reads',
    async () => {
      const backend = await b.make({ maxObjectBytes: 4096 });
      await backend.put('chunks/ee/big', bytes(4097, 3));
      await backend.put('chunks/ee/fits', bytes(4096, 4));
      expect(await rejection(backend.get('chunks/ee/big'))).toMatchObject({
        code: 'IO',
        reason: 'too-large',
      });
      expect(sameBytes(await backend.get('chunks/ee/fits'), bytes(4096, 4))).toBe(true);
      expect(
        sameBytes(await backend.getRange('chunks/ee/big', 4000, 97), bytes(4097, 3).subarray(4000)),
      ).toBe(true);
    },
  );

  it.skipIf(b.skip)(
    'overwriting with identical content keeps one intact object',
    withBackend(async (backend) => {
      const data = bytes(65_536, 9);
      await backend.put('chunks/cd/same', data);
      await backend.put('chunks/cd/same', data);
      expect(sameBytes(await backend.get('chunks/cd/same'), data)).toBe(true);
      expect((await collect(backend.list('chunks/cd/'))).map((o) => [o.key, o.size])).toEqual([
        ['chunks/cd/same', 65_536],
      ]);
    }),
  );

  it.skipIf(b.skip)(
    'malformed keys are rejected with InvalidArgumentError bad-key, nothing stored',
    withBackend(async (backend) => {
      for (const key of BAD_KEYS) {
        const attempts = [
          () => backend.put(key, bytes(1, 10)),
          () => backend.get(key),
          () => backend.getRange(key, 0, 1),
          () => backend.head(key),
          () => backend.delete(key),
        ];
        for (const attempt of attempts) {
          // A rejection, not a synchronous throw: callers await these.
          const err = await rejection(attempt());
          expect(InvalidArgumentError.isInstance(err), `${JSON.stringify(key)}: ${err}`).toBe(true);
          expect((err as InvalidArgumentError).reason).toBe('bad-key');
        }
      }
      expect(await collect(backend.list(''))).toEqual([]);
    }),
  );

  it.skipIf(b.skip)(
    'a reader never sees a partial object while a put is under way',
    withBackend(async (backend) => {
      const data = bytes(4 * 1024 * 1024, 11);
      const seen: number[] = [];
      let done = false;
      const writer = backend.put('chunks/ef/large', data).finally(() => {
        done = true;
      });
      // Poll (with a pause, so the readers do not starve the writer) until the put resolves.
      while (!done) {
        const info = await backend.head('chunks/ef/large');
        if (info) expect(info.size).toBe(data.length);
        try {
          const got = await backend.get('chunks/ef/large');
          seen.push(got.length);
          expect(got.length === data.length && Buffer.compare(got, data) === 0).toBe(true);
        } catch (err) {
          if (!isNotFound(err)) throw err;
          seen.push(-1);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await writer;
      expect(seen.length).toBeGreaterThan(0);
      expect(sameBytes(await backend.get('chunks/ef/large'), data)).toBe(true);
    }),
  );
});
