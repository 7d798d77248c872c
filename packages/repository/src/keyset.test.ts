import { randomBytes } from '@diskube/core/test';
import { describe, expect, it } from 'vitest';
import {
  inPasses,
  KEY_PRESENT,
  KEY_TOP,
  merged,
  NO_KEY,
  PassKeys,
  rangePrefixes,
} from './keyset.js';
import { toHex } from './object.js';

/** `n` distinct random ids (hex). */
function ids(n: number, seed: number): string[] {
  const bytes = randomBytes(n * 32, seed);
  return Array.from({ length: n }, (_, i) => toHex(bytes.subarray(i * 32, i * 32 + 32)));
}

describe('PassKeys', () => {
  it('is an exact set of chunk and patch keys through many growths', () => {
    const keys = new PassKeys(Number.POSITIVE_INFINITY);
    const chunks = ids(40_000, 1);
    const bases = ids(5_000, 2);
    const handles = new Map<string, number>();
    for (const [i, id] of chunks.entries()) {
      const h = keys.ref(id, null, true);
      keys.setStoredSize(h, i);
      handles.set(id, h);
    }
    for (const [i, base] of bases.entries()) {
      // A patch shares its id with a whole chunk: a different key.
      const h = keys.ref(chunks[i]!, base, true);
      expect(h).toBeLessThan(-1);
      keys.setStoredSize(h, 1_000_000 + i);
    }
    expect(keys.size).toBe(45_000);
    for (const [i, id] of chunks.entries()) {
      const h = keys.ref(id, null, false);
      expect(keys.storedSize(h)).toBe(i);
      // Found again, not added again.
      expect(keys.ref(id, null, true)).toBe(h);
    }
    for (const [i, base] of bases.entries())
      expect(keys.storedSize(keys.ref(chunks[i]!, base, false))).toBe(1_000_000 + i);
    expect(keys.size).toBe(45_000);
    for (const id of ids(1_000, 3)) expect(keys.ref(id, null, false)).toBe(NO_KEY);
    expect(keys.ref(chunks[0]!, chunks[1]!, false)).toBe(NO_KEY);
  });

  it('reads listed keys and ignores what is not a chunk or patch key', () => {
    const keys = new PassKeys(100);
    const [a, b] = ids(2, 4);
    const chunk = keys.listed(`chunks/${a!.slice(0, 2)}/${a}`, true);
    const patch = keys.listed(`patches/${a!.slice(0, 2)}/${a}-${b}`, true);
    expect(chunk).toBe(keys.ref(a!, null, false));
    expect(patch).toBe(keys.ref(a!, b!, false));
    keys.setFlags(chunk, KEY_PRESENT);
    keys.setFlags(chunk, KEY_TOP);
    expect(keys.flags(chunk) & (KEY_PRESENT | KEY_TOP)).toBe(KEY_PRESENT | KEY_TOP);
    expect(keys.count(KEY_PRESENT | KEY_TOP)).toBe(1);
    for (const bad of ['chunks/ab/xyz', `chunks/zz/${'g'.repeat(64)}`, `patches/ab/${a}+${b}`])
      expect(keys.listed(bad, true)).toBe(NO_KEY);
    expect(keys.size).toBe(2);
  });

  it('inPasses covers every first byte once, halving ranges that outgrow the limit', async () => {
    const all = ids(3_000, 5);
    const seen = new Map<string, number>();
    const ranges: Array<[number, number]> = [];
    const passes = await inPasses(500, async (keys) => {
      for (const id of all) keys.ref(id, null, true); // overflows past 500 keys
      for (const id of all)
        if (keys.ref(id, null, false) !== NO_KEY) seen.set(id, (seen.get(id) ?? 0) + 1);
      ranges.push([keys.lo, keys.hi]);
    });
    expect(passes).toBe(ranges.length);
    expect(passes).toBeGreaterThanOrEqual(6); // 3,000 keys, at most 500 per pass
    expect(ranges[0]![0]).toBe(0);
    expect(ranges.at(-1)![1]).toBe(256);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBe(ranges[i - 1]![1]);
    expect(seen.size).toBe(all.length);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });

  it('inPasses runs once over everything when the keys fit', async () => {
    const passes = await inPasses(1 << 20, async (keys) => {
      expect(keys.whole).toBe(true);
      for (const id of ids(10_000, 6)) keys.ref(id, null, true);
    });
    expect(passes).toBe(1);
  });
});

describe('rangePrefixes', () => {
  it('matches the keys of exactly the first bytes in range, each by one prefix, few prefixes', () => {
    const key = (b: number) =>
      `chunks/${b.toString(16).padStart(2, '0')}/${b.toString(16).padStart(2, '0')}ab`;
    for (const [lo, hi] of [
      [0, 256],
      [0, 128],
      [128, 192],
      [3, 250],
      [15, 17],
      [16, 32],
      [200, 201],
    ] as const) {
      const prefixes = rangePrefixes('chunks/', lo, hi);
      for (let b = 0; b < 256; b++) {
        const hits = prefixes.filter((p) => key(b).startsWith(p)).length;
        expect(hits, `byte ${b} in [${lo}, ${hi})`).toBe(b >= lo && b < hi ? 1 : 0);
      }
      // Whole hex digits take one prefix: at most 15 single bytes on each side.
      expect(prefixes.length).toBeLessThanOrEqual(16 + 30);
    }
    expect(rangePrefixes('patches/', 0, 128)).toEqual(
      '01234567'.split('').map((d) => `patches/${d}`),
    );
    expect(rangePrefixes('chunks/', 15, 17)).toEqual(['chunks/0f/', 'chunks/10/']);
  });
});

describe('merged', () => {
  /** A source of `n` items that records how many sources run at once. */
  function source(tag: number, n: number, running: { now: number; most: number }) {
    return async function* () {
      running.now++;
      running.most = Math.max(running.most, running.now);
      try {
        for (let i = 0; i < n; i++) {
          await new Promise((resolve) => setTimeout(resolve, (tag * 7 + i) % 3));
          yield `${tag}:${i}`;
        }
      } finally {
        running.now--;
      }
    };
  }

  it('yields every item of every source once, at most `limit` sources at a time', async () => {
    const running = { now: 0, most: 0 };
    const sources = Array.from({ length: 20 }, (_, t) => source(t, t % 5, running));
    const got: string[] = [];
    for await (const item of merged(sources, 4)) got.push(item);
    const want = Array.from({ length: 20 }, (_, t) =>
      Array.from({ length: t % 5 }, (_, i) => `${t}:${i}`),
    ).flat();
    expect(got.sort()).toEqual(want.sort());
    expect(running.most).toBe(4);
    expect(running.now).toBe(0);
  });

  it('ends with the first error and stops the other sources', async () => {
    const running = { now: 0, most: 0 };
    const failing = async function* () {
      yield 'x';
      throw new Error('list failed');
    };
    const sources = [source(1, 50, running), failing, source(2, 50, running)];
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const item of merged(sources, 3)) got.push(item);
      })(),
    ).rejects.toThrow('list failed');
    expect(got).toContain('x');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(running.now).toBe(0);
  });
});
