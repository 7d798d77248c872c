/**
 * Shared test helpers for diskube packages. Import from `@diskube/core/test` in a vitest file:
 *
 *   describeDriverConformance(extDriver, { validImages: async () => [await readFile(img)] });
 *
 * The suite checks the parts of the `FilesystemDriver` contract that hold for every filesystem:
 * probe never throws, results cover the whole source, and hostile input ends in a typed error
 * within a bounded time.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FilesystemDriver, UsedBlocks } from './driver.js';
import { DiskubeError, IoError } from './errors.js';
import { CORE_REASONS } from './reasons.js';
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
  /**
   * The driver package's reason list (e.g. `EXT_REASONS`): every error `usedBlocks` throws must
   * carry one of these or one of core's (`CORE_REASONS`, for errors passed through from a source).
   */
  reasons?: readonly string[];
  /** The driver package's warning codes (e.g. `EXT_WARNINGS`): every warning must use one. */
  warnings?: readonly string[];
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

interface Vocabulary {
  reasons: readonly string[] | undefined;
  warnings: readonly string[] | undefined;
}

/**
 * Runs `usedBlocks` and requires: a covering result whose warning codes are listed, or a typed
 * `DiskubeError` whose reason is listed.
 */
async function expectResultOrTypedError(
  driver: FilesystemDriver,
  source: BlockSource,
  timeoutMs: number,
  what: string,
  vocabulary: Vocabulary,
): Promise<'ok' | 'error'> {
  let result: UsedBlocks;
  try {
    result = await withTimeout(driver.usedBlocks(source), timeoutMs, what);
  } catch (error) {
    if (!DiskubeError.isInstance(error)) {
      throw new Error(`${what}: expected a DiskubeError, got ${String(error)}`, { cause: error });
    }
    if (vocabulary.reasons !== undefined) {
      expect([...vocabulary.reasons, ...CORE_REASONS], `${what}: ${error.message}`).toContain(
        error.reason,
      );
    }
    return 'error';
  }
  expectCoversSource(result, source);
  if (vocabulary.warnings !== undefined) {
    for (const warning of result.warnings) expect(vocabulary.warnings).toContain(warning.code);
  }
  return 'ok';
}

/** Test files, benchmarks and test support, which the vocabulary scan leaves out. */
const NOT_SHIPPED = /(\.test\.ts|\.bench\.ts|test-support\.ts|^test-.*\.ts|^test\.ts)$/;

/**
 * The reason and warning-code literals written in a package's shipped sources: `reason: 'x'`
 * (or `reason: c ? 'x' : 'y'`), `.corrupt(…, 'x')`, the values of a reason table declared
 * `as const satisfies Record<…, XReason>`, and `code: 'x'` (warnings). Reasons with spaces (a
 * `Tail`'s display text) are not reasons of errors and are skipped. A reason computed any other
 * way is invisible to the scan, so write reasons as literals.
 */
export function vocabularyInSources(files: Record<string, string>): {
  reasons: Set<string>;
  warnings: Set<string>;
} {
  const reasons = new Set<string>();
  const warnings = new Set<string>();
  for (const [name, text] of Object.entries(files)) {
    if (NOT_SHIPPED.test(name.split('/').pop() ?? name)) continue;
    for (const m of text.matchAll(/\breason:\s*'([a-z0-9-]+)'/g)) reasons.add(m[1]!);
    // `reason: cond ? 'a' : 'b'` on one line.
    for (const m of text.matchAll(/\breason:[^,\n]*\?\s*'([a-z0-9-]+)'\s*:\s*'([a-z0-9-]+)'/g)) {
      reasons.add(m[1]!).add(m[2]!);
    }
    // A lookup table of reasons: `= { … } as const satisfies Record<…, SomeReason>`.
    for (const m of text.matchAll(
      /=\s*\{([^{}]*)\}\s*as const satisfies Record<[^>]*Reason\s*>/g,
    )) {
      for (const v of m[1]!.matchAll(/:\s*'([a-z0-9-]+)'/g)) reasons.add(v[1]!);
    }
    for (const m of text.matchAll(/\.corrupt\([^;]*?,\s*'([a-z0-9-]+)',?\s*\)/g))
      reasons.add(m[1]!);
    for (const m of text.matchAll(/\bcode:\s*'([a-z0-9-]+)'/g)) warnings.add(m[1]!);
  }
  return { reasons, warnings };
}

export interface ErrorVocabularyOptions {
  /** The package's `src` directory, e.g. `new URL('.', import.meta.url)` from a test beside it. */
  dir: URL;
  /** The package's exported reason list, e.g. `EXT_REASONS`. */
  reasons: readonly string[];
  /** The package's exported warning codes, e.g. `EXT_WARNINGS`. */
  warnings: readonly string[];
  /** Listed reasons the sources need not spell out (thrown for them by core's `FieldReader`). */
  inherited?: readonly string[];
  /** Listed names written in files this scan cannot see (owned elsewhere), kept on purpose. */
  external?: readonly string[];
}

/**
 * The error vocabulary is a contract: the lists are frozen and free of duplicates, every reason and
 * warning code the sources use is listed, and every listed one is used.
 */
export function describeErrorVocabulary(name: string, options: ErrorVocabularyOptions): void {
  describe(`${name} error vocabulary`, () => {
    let found = { reasons: new Set<string>(), warnings: new Set<string>() };
    beforeAll(async () => {
      // Imported here so that this module stays free of Node imports for browser test runners.
      const { readdir, readFile } = await import('node:fs/promises');
      const names = (await readdir(options.dir)).filter((name) => name.endsWith('.ts'));
      const texts = await Promise.all(names.map((n) => readFile(new URL(n, options.dir), 'utf8')));
      found = vocabularyInSources(Object.fromEntries(names.map((n, i) => [n, texts[i]!])));
    });
    const unused = new Set([...(options.inherited ?? []), ...(options.external ?? [])]);

    it('lists are frozen and without duplicates', () => {
      for (const list of [options.reasons, options.warnings]) {
        expect(Object.isFrozen(list)).toBe(true);
        expect(new Set(list).size).toBe(list.length);
      }
    });
    it('every reason the sources throw is listed', () => {
      expect(found.reasons.size).toBeGreaterThan(0);
      for (const reason of found.reasons) expect(options.reasons).toContain(reason);
    });
    it('every listed reason is thrown', () => {
      for (const reason of options.reasons) {
        if (!unused.has(reason)) expect([...found.reasons]).toContain(reason);
      }
    });
    it('every warning code the sources emit is listed, and every listed one is emitted', () => {
      for (const code of found.warnings) expect(options.warnings).toContain(code);
      for (const code of options.warnings) {
        if (!unused.has(code)) expect([...found.warnings]).toContain(code);
      }
    });
  });
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
  const vocabulary = { reasons: options.reasons, warnings: options.warnings };

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
        for (const warning of result.warnings) {
          if (options.warnings !== undefined) expect(options.warnings).toContain(warning.code);
        }
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
            vocabulary,
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
            vocabulary,
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
            vocabulary,
          );
        }
      }
    });
  });
}
