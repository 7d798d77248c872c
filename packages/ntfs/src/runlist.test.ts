import { describe, expect, it } from 'vitest';
import { hex, type Outcome } from './hex.test-support.js';
import { decodeRunlist, findRun, SPARSE } from './runlist.js';

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return `${(error as { code: string }).code}/${(error as { reason: string }).reason}`;
  }
  return undefined;
}

const decode = (h: string, high: number, clusters = 1 << 20, low = 0) =>
  decodeRunlist(hex(h), low, high, clusters, 'test runlist', 0);

describe('decodeRunlist', () => {
  it('decodes a single run', () => {
    expect(decode('21 18 3456 00', 0x17)).toEqual([{ vcn: 0, lcn: 0x5634, length: 0x18 }]);
  });

  it('decodes signed deltas and sparse runs', () => {
    // 0x30 clusters at 0x60; 0x10 sparse; 0x20 at 0x60 − 0x20 = 0x40 (negative delta 0xE0).
    expect(decode('11 30 60 01 10 11 20 e0 00', 0x5f)).toEqual([
      { vcn: 0, lcn: 0x60, length: 0x30 },
      { vcn: 0x30, lcn: SPARSE, length: 0x10 },
      { vcn: 0x40, lcn: 0x40, length: 0x20 },
    ]);
  });

  it('decodes multi-byte lengths and offsets and starts at lowest_vcn', () => {
    // length 0x012345 (3 bytes), LCN 0x0a0b0c0d (4 bytes).
    expect(decode('43 452301 0d0c0b0a 00', 0x100 + 0x12345 - 1, 1 << 30, 0x100)).toEqual([
      { vcn: 0x100, lcn: 0x0a0b0c0d, length: 0x12345 },
    ]);
  });

  it('accepts an empty runlist when highest_vcn is −1 or equal to lowest_vcn', () => {
    expect(decode('00', -1)).toEqual([]);
    expect(decode('00', 0)).toEqual([]);
  });

  it('rejects malformed runlists with stable reasons', () => {
    expect(reason(() => decode('21 18 3456', 0x17))).toBe<Outcome>('CORRUPT/bad-runlist'); // no terminator
    expect(reason(() => decode('', 0x17))).toBe<Outcome>('CORRUPT/bad-runlist');
    expect(reason(() => decode('09 01 00', 0))).toBe<Outcome>('CORRUPT/bad-runlist'); // 9-byte length
    expect(reason(() => decode('91 01 00', 0))).toBe<Outcome>('CORRUPT/bad-runlist'); // 9-byte offset
    expect(reason(() => decode('10 00', 0))).toBe<Outcome>('CORRUPT/bad-runlist'); // 0-byte length
    expect(reason(() => decode('11 00 05 00', 0))).toBe<Outcome>('CORRUPT/bad-runlist'); // length 0
    expect(reason(() => decode('11 ff 05 00', 0))).toBe<Outcome>('CORRUPT/bad-runlist'); // length −1
    expect(reason(() => decode('21 18 34', 0x17))).toBe<Outcome>('CORRUPT/bad-runlist'); // field past the end
    expect(reason(() => decode('11 10 20 00', 0x17))).toBe<Outcome>('CORRUPT/bad-runlist'); // covers too little
    expect(reason(() => decode('11 30 20 00', 0x17))).toBe<Outcome>('CORRUPT/bad-runlist'); // covers too much
    expect(reason(() => decode('81 01 ffffffffffffff7f 00', 0))).toBe<Outcome>(
      'CORRUPT/run-outside-volume',
    );
  });

  it('rejects runs outside the volume', () => {
    expect(reason(() => decode('11 10 f0 00', 0x0f))).toBe<Outcome>('CORRUPT/run-outside-volume'); // LCN −16
    expect(reason(() => decode('11 10 20 11 10 c0 00', 0x1f))).toBe<Outcome>(
      'CORRUPT/run-outside-volume',
    ); // 0x20 − 0x40
    expect(reason(() => decode('21 10 f80f 00', 0x0f, 0x1000))).toBe<Outcome>(
      'CORRUPT/run-outside-volume',
    ); // ends at 0x1008
    expect(decode('21 10 f00f 00', 0x0f, 0x1000)).toEqual([{ vcn: 0, lcn: 0xff0, length: 0x10 }]);
  });
});

describe('findRun', () => {
  it('finds the run holding a VCN by binary search', () => {
    const runs = decode('11 30 60 01 10 11 20 e0 00', 0x5f);
    expect(findRun(runs, 0)?.lcn).toBe(0x60);
    expect(findRun(runs, 0x2f)?.lcn).toBe(0x60);
    expect(findRun(runs, 0x30)?.lcn).toBe(SPARSE);
    expect(findRun(runs, 0x5f)?.lcn).toBe(0x40);
    expect(findRun(runs, 0x60)).toBeUndefined();
  });
});
