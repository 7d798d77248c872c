import { describe, expect, it } from 'vitest';
import {
  chunks,
  generate,
  overwrite,
  resize,
  type Segment,
  sha256,
  slice,
  toBuffer,
} from './content.js';

const rnd = (start: number, length: number): Segment => ({
  kind: 'random',
  key: 'seed:1',
  start,
  length,
});

describe('content segments', () => {
  it('random streams are deterministic and random-access', () => {
    const whole = toBuffer([rnd(0, 3 * 2 ** 20 + 5)]);
    // Buffer.equals: deep equality over megabytes is slow in expect.
    expect(toBuffer([rnd(0, 3 * 2 ** 20 + 5)]).equals(whole)).toBe(true);
    // Unaligned starts and chunk boundaries give the same bytes as the whole stream.
    for (const [start, len] of [
      [7, 100],
      [2 ** 20 - 3, 10],
      [2 ** 20 + 17, 2 ** 20 + 1],
    ] as const) {
      expect(toBuffer([rnd(start, len)]).equals(whole.subarray(start, start + len))).toBe(true);
    }
    expect(toBuffer([{ kind: 'random', key: 'seed:2', start: 0, length: 64 }])).not.toEqual(
      whole.subarray(0, 64),
    );
  });

  it('text is readable 64-byte lines, random-access too', () => {
    const t = toBuffer([{ kind: 'text', start: 0, length: 200 }]).toString('latin1');
    expect(t.slice(0, 64)).toMatch(/^line 00000000: the quick brown fox jumps over\.+\n$/);
    expect(toBuffer([{ kind: 'text', start: 70, length: 90 }]).toString('latin1')).toBe(
      t.slice(70, 160),
    );
  });

  it('slices, overwrites and resizes like a file', () => {
    const base = generate({ kind: 'literal', text: 'abcdefgh' }, 8);
    expect(toBuffer(slice(base, 2, 5)).toString()).toBe('cde');
    const xy = generate({ kind: 'literal', text: 'XY' }, 2);
    expect(toBuffer(overwrite(base, 3, xy)).toString()).toBe('abcXYfgh');
    expect(toBuffer(overwrite(base, 7, xy)).toString()).toBe('abcdefgXY');
    expect(toBuffer(overwrite(base, 10, xy))).toEqual(Buffer.from('abcdefgh\0\0XY'));
    expect(toBuffer(resize(base, 3)).toString()).toBe('abc');
    expect(toBuffer(resize(base, 10))).toEqual(Buffer.from('abcdefgh\0\0'));
  });

  it('hashes without materializing and chunks at 1 MiB', () => {
    const segs = [rnd(0, 2 ** 20 + 1), { kind: 'zeros', length: 3 } as Segment];
    expect([...chunks(segs)].map((c) => c.length)).toEqual([2 ** 20, 1, 3]);
    expect(sha256([])).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256(segs)).toBe(
      sha256([rnd(0, 5), rnd(5, 2 ** 20 - 4), { kind: 'zeros', length: 3 }]),
    );
  });
});
