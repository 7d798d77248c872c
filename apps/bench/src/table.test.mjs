import { describe, expect, it } from 'vitest';
import { median, parseTimeVerbose } from './exec.mjs';
import { markdownTable, met, mib, relative } from './table.mjs';

describe('markdownTable', () => {
  it('pads columns and escapes pipes', () => {
    expect(
      markdownTable(
        ['a', 'bb'],
        [
          ['x|y', '1'],
          ['z', ''],
        ],
      ),
    ).toBe(['| a    | bb  |', '| ---- | --- |', '| x\\|y | 1   |', '| z    |     |'].join('\n'));
  });
});

describe('formatting', () => {
  it('formats sizes, ratios and targets', () => {
    expect(mib(3 * 2 ** 20)).toBe('3.00 MiB');
    expect(mib(1536)).toBe('1.5 KiB');
    expect(relative(101, 100)).toBe('+1.00 %');
    expect(relative(50, 100)).toBe('-50.00 %');
    expect(met(true)).toBe('yes');
    expect(met(false)).toBe('**NO**');
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

describe('parseTimeVerbose', () => {
  it('reads peak RSS in bytes and CPU seconds', () => {
    const text = `\tCommand being timed: "node x"
\tUser time (seconds): 5.33
\tSystem time (seconds): 1.43
\tMaximum resident set size (kbytes): 194324
\tExit status: 0
`;
    const r = parseTimeVerbose(text);
    expect(r.maxRssBytes).toBe(194324 * 1024);
    expect(r.cpuSeconds).toBeCloseTo(6.76, 6);
  });

  it('fails loudly when a field is missing', () => {
    expect(() =>
      parseTimeVerbose('Maximum resident set size (kbytes): 5\nUser time (seconds): 1\n'),
    ).toThrow(/System time/);
  });
});

describe('selfTimes', () => {
  it('adds each sample time to its function, heaviest first', async () => {
    const { selfTimes } = await import('./profile.mjs');
    const frame = (/** @type {string} */ functionName, url = '') => ({
      functionName,
      url,
      lineNumber: 9,
    });
    const r = selfTimes({
      nodes: [
        { id: 1, callFrame: frame('(root)') },
        { id: 2, callFrame: frame('digest', 'file:///x/digest.js') },
        { id: 3, callFrame: frame('read', 'file:///x/io.js') },
      ],
      samples: [2, 3, 2, 2],
      timeDeltas: [1000, 2000, 3000, 4000],
      startTime: 0,
      endTime: 20_000,
    });
    expect(r.totalMs).toBe(20);
    expect(r.rows).toEqual([
      { name: 'digest digest.js:10', ms: 8 },
      { name: 'read io.js:10', ms: 2 },
    ]);
  });
});

describe('stageTimes', () => {
  it('groups functions into backup stages, the rest into "other"', async () => {
    const { stageTimes } = await import('./profile.mjs');
    expect(
      stageTimes([
        { name: 'hash hash:221', ms: 5 },
        { name: 'blockDigest index.js:551', ms: 1 },
        { name: 'postMessage', ms: 2 },
        { name: 'compress compress.js:67', ms: 4 },
        { name: 'crc32c index.js:168', ms: 1 },
        { name: 'somethingElse x.js:1', ms: 0.5 },
      ]),
    ).toEqual([
      { stage: 'digest (SHA-256 per block)', ms: 6 },
      { stage: 'compress (zstd)', ms: 4 },
      { stage: 'worker handoff (postMessage)', ms: 2 },
      { stage: 'checksums (CRC32C)', ms: 1 },
      { stage: 'other', ms: 0.5 },
    ]);
  });
});
