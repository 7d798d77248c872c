/**
 * Shared test helpers for diskube packages. Import from `@diskube/core/test` in a vitest file:
 *
 *   describeDriverConformance(extDriver, {
 *     oracleImages: async () => [{ name: 'ext4 4K', image, oracle: dumpe2fsUsedMap }],
 *     dirtyImages: async () => [{ name: 'needs_recovery', image: dirty }],
 *     reasons: EXT_REASONS,
 *     warnings: EXT_WARNINGS,
 *   });
 *
 * The suite checks the parts of the `FilesystemDriver` contract that hold for every filesystem:
 * the used map equals an independent oracle's (or exceeds it only where explained), dirty
 * filesystems are DIRTY (and all used under `assumeUsedOnDoubt`), the result does not depend on
 * where the filesystem sits in its parent source or on the run, `probe` is cheap and never throws,
 * an `AbortSignal` stops the scan, and hostile input ends in a typed error within a bounded time.
 */
import { Bitmap } from '@diskube/bitmap';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FilesystemDriver, UsedBlocks, UsedBlocksOptions } from './driver.js';
import { DirtyFilesystemError, DiskubeError, IoError } from './errors.js';
import { CORE_REASONS } from './reasons.js';
import { type BlockSource, memorySource, sliceSource } from './source.js';

/** Blocks a driver keeps beyond its oracle, with the reason a reader of the test can check. */
export interface ExplainedExtra {
  /** The blocks (same units and length as the result's `used`). */
  blocks: Bitmap;
  /** Why they are kept, e.g. `the AGFL: reserved for btree growth, in neither btree`. */
  why: string;
}

/** A real image and what an independent tool says is used in it. */
export interface OracleImage {
  /** For messages, e.g. `ext4 1 KiB blocks, bigalloc`. */
  name: string;
  image: Uint8Array;
  /**
   * The used blocks according to the filesystem's own tools (dumpe2fs, ntfscat $Bitmap, xfs_db
   * freesp, partclone -D …), in the driver's block units: `length` must equal the result's
   * `blockCount`. The result must equal it, or exceed it only by blocks in `explained`.
   */
  oracle: Bitmap;
  /** Every block the driver may keep beyond the oracle, explained. */
  explained?: ExplainedExtra[];
  /** When given, the result's `tail.used` must be this. */
  tailUsed?: boolean;
  /** Options for `usedBlocks` (e.g. `{ crossCheck: true }`). */
  options?: UsedBlocksOptions;
}

/** A real image whose allocation maps cannot be trusted (not cleanly unmounted, dirty log …). */
export interface DirtyImage {
  name: string;
  image: Uint8Array;
  /** When given, the DIRTY error's `reason` must be this (e.g. `needs-recovery`). */
  reason?: string;
}

export interface ConformanceOptions {
  /**
   * Real images with an oracle, from the package's own matrix (a few MiB each). Each must be
   * recognised, covered and equal to its oracle (or a superset whose every extra block is
   * explained). They also feed the robustness tests below.
   */
  oracleImages?: () => Promise<OracleImage[]>;
  /**
   * More small valid images the driver must accept (a result covering the source with some used
   * blocks), for the robustness tests. At least one of `oracleImages` and `validImages` is needed.
   */
  validImages?: () => Promise<Uint8Array[]>;
  /** Images that must be refused as DIRTY, and come out all used under `assumeUsedOnDoubt`. */
  dirtyImages?: () => Promise<DirtyImage[]>;
  /**
   * Most bytes one `probe` may read (default 64 KiB): probe runs on every partition of every disk
   * for every driver, so it must stay a few small reads.
   */
  probeReadBudget?: number;
  /** More tests of the package, run inside the suite's `describe` (after the shared ones). */
  additionalTests?: () => void;
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

/** A source that counts the reads and bytes asked of it. */
export function countingSource(inner: BlockSource): {
  source: BlockSource;
  reads: () => number;
  bytes: () => number;
} {
  let reads = 0;
  let bytes = 0;
  return {
    source: {
      size: inner.size,
      async read(offset, dst) {
        reads++;
        bytes += dst.length;
        await inner.read(offset, dst);
      },
    },
    reads: () => reads,
    bytes: () => bytes,
  };
}

/**
 * `[offset, length]` byte ranges (a partclone `-D` domain log, an fsck listing …) as a map of
 * `units` blocks of `unitSize` bytes: a block partly covered counts as used; ranges past the last
 * block are clipped.
 */
export function bitmapOfRanges(
  ranges: Iterable<readonly [number, number]>,
  unitSize: number,
  units: number,
): Bitmap {
  const used = new Bitmap(units);
  for (const [offset, length] of ranges) {
    const first = Math.floor(offset / unitSize);
    const end = Math.min(units, Math.ceil((offset + length) / unitSize));
    if (end > first) used.setRange(first, end - first);
  }
  return used;
}

/**
 * Where two used maps differ, as the first few runs each way: `missing` are set in `expected`
 * only (blocks that would be lost), `extra` in `actual` only. Both empty when the maps are equal;
 * maps of different lengths give one `[-1, length]` run each way.
 */
export function bitmapDifferences(
  actual: Bitmap,
  expected: Bitmap,
  max = 5,
): { missing: Array<[number, number]>; extra: Array<[number, number]> } {
  if (actual.length !== expected.length) {
    return { missing: [[-1, expected.length]], extra: [[-1, actual.length]] };
  }
  const first = (b: Bitmap) => b.toRanges().slice(0, max) as Array<[number, number]>;
  return {
    missing: first(expected.clone().andNot(actual)),
    extra: first(actual.clone().andNot(expected)),
  };
}

/**
 * Compares a result with its oracle: nothing the oracle calls used may be missing, and every
 * extra block must be in one of the explained sets. Returns the problems found (empty: ok).
 */
export function oracleProblems(
  result: UsedBlocks,
  oracle: Bitmap,
  explained: readonly ExplainedExtra[] = [],
): string[] {
  if (oracle.length !== result.blockCount) {
    return [`oracle has ${oracle.length} blocks, the result ${result.blockCount}`];
  }
  const problems: string[] = [];
  const { missing } = bitmapDifferences(result.used, oracle);
  if (missing.length > 0) problems.push(`missing (under-reported) runs ${JSON.stringify(missing)}`);
  const unexplained = result.used.clone().andNot(oracle);
  for (const e of explained) {
    if (e.blocks.length !== result.blockCount) {
      problems.push(`explained set "${e.why}" has ${e.blocks.length} blocks`);
    } else {
      unexplained.andNot(e.blocks);
    }
  }
  if (unexplained.count() > 0) {
    problems.push(
      `${unexplained.count()} extra blocks nobody explained, runs ${JSON.stringify(unexplained.toRanges().slice(0, 5))}`,
    );
  }
  return problems;
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
    // A package's own error helper named `fail`: the first lower-case literal on the call's line,
    // `fail(op, key, 'too-large', …)` or `fail(op, key, cond ? 'short-read' : reason, …)`.
    for (const m of text.matchAll(/\bfail\([^;\n]*?'([a-z0-9-]+)'/g)) reasons.add(m[1]!);
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

/** Same result: size, coverage, map, tail, warnings and facts. */
function expectSameResult(a: UsedBlocks, b: UsedBlocks, what: string): void {
  expect(b.blockSize, what).toBe(a.blockSize);
  expect(b.blockCount, what).toBe(a.blockCount);
  expect(b.used.equals(a.used), `${what}: used maps differ`).toBe(true);
  expect(b.tail, what).toEqual(a.tail);
  expect(b.warnings, what).toEqual(a.warnings);
  expect(b.facts, what).toEqual(a.facts);
}

/** `image` with the bytes in `patches` replaced, read without copying the image. */
function patchedSource(image: Uint8Array, patches: ReadonlyMap<number, number>): BlockSource {
  const inner = memorySource(image);
  return {
    size: image.length,
    async read(offset, dst) {
      await inner.read(offset, dst);
      for (const [at, value] of patches) {
        if (at >= offset && at < offset + dst.length) dst[at - offset] = value;
      }
    },
  };
}

/** `bytes` placed `before` random bytes into a larger buffer, followed by `after` more. */
function embedded(bytes: Uint8Array, before: number, after: number, seed: number): Uint8Array {
  const out = randomBytes(before + bytes.length + after, seed);
  out.set(bytes, before);
  return out;
}

function isAbort(error: unknown, signal: AbortSignal): boolean {
  return error === signal.reason || (error instanceof Error && error.name === 'AbortError');
}

export function describeDriverConformance(
  driver: FilesystemDriver,
  options: ConformanceOptions,
): void {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const corruptions = options.corruptions ?? 48;
  const seed = options.seed ?? 1;
  const probeBudget = options.probeReadBudget ?? 64 << 10;
  const vocabulary = { reasons: options.reasons, warnings: options.warnings };

  let oracles: OracleImage[] | undefined;
  let valid: Uint8Array[] | undefined;
  const oracleImages = async () => {
    oracles ??= (await options.oracleImages?.()) ?? [];
    return oracles;
  };
  /** Every valid image: the oracle images, then `validImages`. */
  const validImages = async () => {
    valid ??= [
      ...(await oracleImages()).map((o) => o.image),
      ...((await options.validImages?.()) ?? []),
    ];
    return valid;
  };

  describe(`${driver.name} driver conformance`, () => {
    it('has valid images to test with', async () => {
      expect(
        options.oracleImages !== undefined || options.validImages !== undefined,
        'give oracleImages or validImages',
      ).toBe(true);
      expect((await validImages()).length).toBeGreaterThan(0);
    });

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

    it(`probe reads at most ${probeBudget} bytes`, async () => {
      for (const [n, image] of (await validImages()).entries()) {
        const counted = countingSource(memorySource(image));
        expect(await driver.probe(counted.source), `image ${n}`).not.toBeNull();
        expect(counted.bytes(), `probe of image ${n}: bytes read`).toBeLessThanOrEqual(probeBudget);
      }
    });

    it('recognises every valid image and covers the whole source', async () => {
      for (const image of await validImages()) {
        const source = memorySource(image);
        const probe = await driver.probe(source);
        expect(probe).not.toBeNull();
        const result = await driver.usedBlocks(source);
        expectCoversSource(result, source);
        expect(result.blockSize).toBe(probe!.blockSize);
        expect(result.filesystem).toBe(probe!.filesystem);
        for (const warning of result.warnings) {
          if (options.warnings !== undefined) expect(options.warnings).toContain(warning.code);
        }
        // A filesystem always uses some blocks (its own metadata).
        expect(result.used.count()).toBeGreaterThan(0);
      }
    });

    it('the used map equals the oracle, or exceeds it only by explained blocks', async () => {
      const images = await oracleImages();
      if (options.oracleImages !== undefined) expect(images.length).toBeGreaterThan(0);
      for (const o of images) {
        const source = memorySource(o.image);
        const result = await driver.usedBlocks(source, o.options);
        expectCoversSource(result, source);
        expect(oracleProblems(result, o.oracle, o.explained), o.name).toEqual([]);
        if (o.tailUsed !== undefined) expect(result.tail.used, `${o.name}: tail`).toBe(o.tailUsed);
      }
    });

    it('gives the same result twice (determinism)', async () => {
      for (const [n, image] of (await validImages()).entries()) {
        const first = await driver.usedBlocks(memorySource(image));
        const second = await driver.usedBlocks(memorySource(image));
        expectSameResult(first, second, `image ${n}, second run`);
      }
    });

    it('gives the same result through sliceSource at a non-zero offset', async () => {
      for (const [n, image] of (await validImages()).entries()) {
        const direct = await driver.usedBlocks(memorySource(image));
        // An odd sector count before, some bytes after: nothing may depend on the absolute offset.
        const before = 3 * 512 + (1 << 20);
        const parent = memorySource(embedded(image, before, 12_345, seed + n));
        const slice = sliceSource(parent, before, image.length);
        expect(await driver.probe(slice), `image ${n} in a slice`).toEqual(
          await driver.probe(memorySource(image)),
        );
        expectSameResult(direct, await driver.usedBlocks(slice), `image ${n} in a slice`);
      }
    });

    it('rejects with the abort reason when the signal is aborted, before or during the scan', async () => {
      for (const [n, image] of (await validImages()).entries()) {
        const before = new AbortController();
        before.abort();
        const early = await driver.usedBlocks(memorySource(image), { signal: before.signal }).then(
          () => 'resolved',
          (error: unknown) => error,
        );
        expect(isAbort(early, before.signal), `image ${n}, aborted before: ${String(early)}`).toBe(
          true,
        );

        // Aborted while the first read is under way: the scan must notice before it resolves (a
        // check at entry only is not enough; where else it checks is the driver's choice).
        const during = new AbortController();
        const inner = memorySource(image);
        const source: BlockSource = {
          size: inner.size,
          async read(offset, dst) {
            during.abort();
            await inner.read(offset, dst);
          },
        };
        const late = await driver.usedBlocks(source, { signal: during.signal }).then(
          () => 'resolved',
          (error: unknown) => error,
        );
        expect(isAbort(late, during.signal), `image ${n}, aborted during: ${String(late)}`).toBe(
          true,
        );
      }
    });

    it('refuses every dirty image as DIRTY, and marks it all used under assumeUsedOnDoubt', async () => {
      const images = (await options.dirtyImages?.()) ?? [];
      if (options.dirtyImages !== undefined) expect(images.length).toBeGreaterThan(0);
      for (const d of images) {
        const source = memorySource(d.image);
        expect(await driver.probe(source), `${d.name}: probe`).not.toBeNull();
        const error = await driver.usedBlocks(source).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(DirtyFilesystemError.isInstance(error), `${d.name}: ${String(error)}`).toBe(true);
        const dirty = error as DirtyFilesystemError;
        if (vocabulary.reasons !== undefined) expect(vocabulary.reasons).toContain(dirty.reason);
        if (d.reason !== undefined) expect(dirty.reason, d.name).toBe(d.reason);
        const all = await driver.usedBlocks(source, { assumeUsedOnDoubt: true });
        expectCoversSource(all, source);
        expect(all.used.count(), `${d.name}: all used`).toBe(all.blockCount);
        expect(all.tail.length === 0 || all.tail.used, `${d.name}: tail kept`).toBe(true);
        // One `assumed-used` warning per doubt the driver absorbed; the refusal's among them.
        expect(
          all.warnings.filter((w) => w.code === 'assumed-used').map((w) => w.reason),
          `${d.name}: an assumed-used warning with the refusal's reason`,
        ).toContain(dirty.reason);
      }
    });

    it('probe never throws and usedBlocks ends typed on truncated images', async () => {
      for (const image of await validImages()) {
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
      for (const image of await validImages()) {
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
      const images = await validImages();
      for (const [n, image] of images.entries()) {
        const next = prng(seed * 7919 + n);
        for (let k = 0; k < corruptions; k++) {
          // Most metadata sits near the start; also hit anywhere in the image.
          const region = k % 3 === 0 ? image.length : Math.min(image.length, 1 << 16);
          const count = 1 + Math.floor(next() * 8);
          const patches = new Map<number, number>();
          for (let p = 0; p < count; p++) {
            const at = Math.floor(next() * region);
            patches.set(at, k % 5 === 0 ? 0xff : Math.floor(next() * 256));
          }
          const source = patchedSource(image, patches);
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

    options.additionalTests?.();
  });
}
