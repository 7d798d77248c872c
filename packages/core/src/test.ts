/**
 * Shared test helpers for diskube packages. Import from `@diskube/core/test` in a vitest file:
 *
 *   describeDriverConformance(extDriver, { validImages: async () => [await readFile(img)] });
 *
 * The suite checks the parts of the `FilesystemDriver` contract that hold for every filesystem:
 * probe never throws, results cover the whole source, and hostile input ends in a typed error
 * within a bounded time.
 */
import { describe, expect, it } from 'vitest';
import type { FilesystemDriver, UsedBlocks } from './driver.js';
import { DiskubeError, IoError } from './errors.js';
import { type BlockSource, memorySource } from './source.js';

export interface ConformanceOptions {
  /** Small valid images (a few MiB) that the driver must accept. */
  validImages: () => Promise<Uint8Array[]>;
  /** Upper bound for one `usedBlocks` call on corrupt input, in ms (default 10 000). */
  timeoutMs?: number;
  /** Random corruptions tried per image (default 48). */
  corruptions?: number;
  /** Seed for the deterministic corruptions (default 1). */
  seed?: number;
}

/** A small deterministic PRNG (mulberry32): tests must be reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` deterministic random bytes. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** A source whose every read rejects, as a failing disk would. */
export function failingSource(size: number): BlockSource {
  return {
    size,
    async read(offset) {
      throw new IoError('simulated read failure', { offset, reason: 'read-failed' });
    },
  };
}

/** Asserts the coverage invariants of the core contract on a result. */
export function expectCoversSource(result: UsedBlocks, source: BlockSource): void {
  expect(Number.isSafeInteger(result.blockSize) && result.blockSize > 0).toBe(true);
  expect(Number.isSafeInteger(result.blockCount) && result.blockCount >= 0).toBe(true);
  expect(result.used.length).toBe(result.blockCount);
  expect(result.tail.offset).toBe(result.blockCount * result.blockSize);
  expect(result.tail.offset + result.tail.length).toBe(source.size);
  expect(result.tail.length).toBeGreaterThanOrEqual(0);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `usedBlocks` and requires: a covering result, or a typed `DiskubeError`. */
async function expectResultOrTypedError(
  driver: FilesystemDriver,
  source: BlockSource,
  timeoutMs: number,
  what: string,
): Promise<'ok' | 'error'> {
  try {
    const result = await withTimeout(driver.usedBlocks(source), timeoutMs, what);
    expectCoversSource(result, source);
    return 'ok';
  } catch (error) {
    if (!DiskubeError.isInstance(error)) {
      throw new Error(`${what}: expected a DiskubeError, got ${String(error)}`, { cause: error });
    }
    return 'error';
  }
}

/** Offsets where truncation is interesting: sector and block boundaries near the start, then spread. */
function truncationPoints(size: number): number[] {
  const points = new Set<number>([0, 1, 511, 512, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 8192]);
  for (let i = 1; i < 16; i++) points.add(Math.floor((size * i) / 16));
  points.add(size - 1);
  return [...points].filter((p) => p >= 0 && p < size).sort((a, b) => a - b);
}

export function describeDriverConformance(
  driver: FilesystemDriver,
  options: ConformanceOptions,
): void {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const corruptions = options.corruptions ?? 48;
  const seed = options.seed ?? 1;

  describe(`${driver.name} driver conformance`, () => {
    it('probe resolves null (never throws) on random bytes, zeros and 0xff', async () => {
      const sizes = [0, 1, 511, 512, 1024, 2048, 4096, 65536, 1 << 20];
      for (const [i, size] of sizes.entries()) {
        for (const bytes of [
          randomBytes(size, seed + i),
          new Uint8Array(size),
          new Uint8Array(size).fill(0xff),
        ]) {
          await expect(driver.probe(memorySource(bytes))).resolves.toBeNull();
        }
      }
    });

    it('probe never throws on a source whose reads fail', async () => {
      await expect(driver.probe(failingSource(1 << 20))).resolves.toBeNull();
    });

    it('recognises every valid image and covers the whole source', async () => {
      const images = await options.validImages();
      expect(images.length).toBeGreaterThan(0);
      for (const image of images) {
        const source = memorySource(image);
        const probe = await driver.probe(source);
        expect(probe).not.toBeNull();
        const result = await driver.usedBlocks(source);
        expectCoversSource(result, source);
        expect(result.blockSize).toBe(probe!.blockSize);
        // A filesystem always uses some blocks (its own metadata).
        expect(result.used.count()).toBeGreaterThan(0);
      }
    });

    it('probe never throws and usedBlocks ends typed on truncated images', async () => {
      for (const image of await options.validImages()) {
        for (const cut of truncationPoints(image.length)) {
          const source = memorySource(image.subarray(0, cut));
          const probe = await driver.probe(source);
          expect(probe === null || typeof probe.filesystem === 'string').toBe(true);
          await expectResultOrTypedError(
            driver,
            source,
            timeoutMs,
            `usedBlocks truncated at ${cut}`,
          );
        }
      }
    });

    it('usedBlocks on a source whose reads fail rejects with a typed error', async () => {
      for (const image of await options.validImages()) {
        let reads = 0;
        const inner = memorySource(image);
        // Let the first few reads through so the failure lands past the superblock.
        for (const allowed of [0, 1, 2, 4]) {
          reads = 0;
          const source: BlockSource = {
            size: inner.size,
            async read(offset, dst) {
              if (reads++ >= allowed)
                throw new IoError('simulated', { offset, reason: 'read-failed' });
              await inner.read(offset, dst);
            },
          };
          const outcome = await expectResultOrTypedError(
            driver,
            source,
            timeoutMs,
            'failing reads',
          );
          if (allowed === 0) expect(outcome).toBe('error');
        }
      }
    });

    it('usedBlocks on randomly corrupted images ends in a result or a typed error, in bounded time', async () => {
      const images = await options.validImages();
      for (const [n, image] of images.entries()) {
        const next = prng(seed * 7919 + n);
        for (let k = 0; k < corruptions; k++) {
          const copy = image.slice();
          // Most metadata sits near the start; also hit anywhere in the image.
          const region = k % 3 === 0 ? copy.length : Math.min(copy.length, 1 << 16);
          const patches = 1 + Math.floor(next() * 8);
          for (let p = 0; p < patches; p++) {
            const at = Math.floor(next() * region);
            copy[at] = k % 5 === 0 ? 0xff : Math.floor(next() * 256);
          }
          const source = memorySource(copy);
          await driver.probe(source);
          await expectResultOrTypedError(
            driver,
            source,
            timeoutMs,
            `corruption ${k} of image ${n}`,
          );
        }
      }
    });
  });
}
