import { hasErrorCode } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { cycleOf, findLogState, headerBBs, parseLogRecordHeader } from './log.js';

// Synthetic logs in memory, laid out as the kernel writes them: every BB starts with its cycle
// number, record headers start with 0xFEEDBABE and hold the cycle in their second word.

const BB = 512;
const UUID = new Uint8Array(16).fill(0x5a);

interface Rec {
  at: number;
  cycle: number;
  /** Data BBs after the header (default 1). */
  data?: number;
  /** Data BBs actually written (a torn record writes fewer; the rest keep the old cycle). */
  written?: number;
  unmount?: boolean;
  ops?: number;
}

function put32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, false);
}

/** A log of `n` BBs whose unwritten BBs carry `background(bb)` as cycle, with `records` in it. */
function makeLog(n: number, background: (bb: number) => number, records: Rec[]): Uint8Array {
  const log = new Uint8Array(n * BB);
  for (let bb = 0; bb < n; bb++) put32(log, bb * BB, background(bb));
  for (const r of records) {
    const h = r.at * BB;
    const data = r.data ?? 1;
    put32(log, h, 0xfeedbabe);
    put32(log, h + 0x04, r.cycle);
    put32(log, h + 0x08, 2);
    put32(log, h + 0x0c, data * BB);
    put32(log, h + 0x10, r.cycle);
    put32(log, h + 0x14, r.at);
    put32(log, h + 0x18, r.cycle);
    put32(log, h + 0x1c, r.at);
    put32(log, h + 0x28, r.ops ?? 1);
    log.set(UUID, h + 0x130);
    put32(log, h + 0x140, 32768);
    for (let k = 1; k <= (r.written ?? data); k++) {
      const d = ((r.at + k) % n) * BB;
      put32(log, d, r.cycle);
      log[d + 8] = 0xaa; // oh_clientid XFS_LOG
      log[d + 9] = r.unmount ? 0x20 : 0x02;
    }
  }
  return log;
}

async function state(log: Uint8Array) {
  const n = log.length / BB;
  return findLogState(
    async (start, count) => {
      if (start < 0 || start + count > n)
        throw new Error(`read [${start}, +${count}) outside the log`);
      return log.slice(start * BB, (start + count) * BB);
    },
    n,
    true,
    UUID,
    0,
  );
}

/** `count` clean records of 2 BBs from `from`, all of cycle `cycle`. */
const records = (from: number, count: number, cycle: number, unmountLast = true): Rec[] =>
  Array.from({ length: count }, (_, i) => ({
    at: from + 2 * i,
    cycle,
    unmount: unmountLast && i === count - 1,
  }));

describe('log record header', () => {
  it('parses the fields recovery needs', () => {
    const log = makeLog(4, () => 0, [{ at: 0, cycle: 7, data: 3 }]);
    const h = parseLogRecordHeader(log.subarray(0, BB), 0);
    expect(h).toMatchObject({ cycle: 7, version: 2, len: 3 * BB, numLogops: 1, size: 32768 });
    expect(h.lsn).toBe((7n << 32n) | 0n);
    expect(headerBBs(h)).toBe(1);
    expect(headerBBs({ ...h, size: 256 * 1024 })).toBe(8);
    expect(cycleOf(log, 0)).toBe(7);
    expect(cycleOf(log, BB)).toBe(7);
  });
  it('rejects a bad magic, version or length', () => {
    const log = makeLog(2, () => 0, [{ at: 0, cycle: 1 }]);
    for (const [at, value, reason] of [
      [0x00, 0x12345678, 'bad-magic'],
      [0x08, 3, 'bad-version'],
      [0x0c, 0x7fffffff, 'bad-log-record'],
    ] as const) {
      const copy = log.slice(0, BB);
      put32(copy, at, value);
      try {
        parseLogRecordHeader(copy, 4096);
        expect.unreachable();
      } catch (e) {
        expect(hasErrorCode(e, 'CORRUPT') && e.reason).toBe(reason);
      }
    }
  });
});

describe('log head and tail', () => {
  const N = 8192;
  it('a zeroed log is clean (nothing to replay)', async () => {
    expect(await state(new Uint8Array(N * BB))).toMatchObject({ clean: true, zeroed: true });
  });
  it('a fresh log (mkfs: one unmount record, the rest zero) is clean', async () => {
    const log = makeLog(N, () => 0, [{ at: 0, cycle: 1, unmount: true }]);
    expect(await state(log)).toEqual({ clean: true, head: 2, tail: 2, zeroed: false });
  });
  it('records after mkfs ending in a transaction are dirty', async () => {
    const log = makeLog(N, () => 0, records(0, 300, 1, false));
    expect(await state(log)).toMatchObject({ clean: false, head: 600 });
  });
  it('a wrapped log with the head in the middle is clean after an unmount record', async () => {
    // Cycle 5 up to BB 1000, cycle 4 after (the previous pass).
    const log = makeLog(N, (bb) => (bb < 1000 ? 5 : 4), [
      ...records(0, 500, 5),
      ...records(1000, (N - 1000) / 2, 4, false),
    ]);
    expect(await state(log)).toEqual({ clean: true, head: 1000, tail: 1000, zeroed: false });
  });
  it('the same log without the unmount record is dirty', async () => {
    const log = makeLog(N, (bb) => (bb < 1000 ? 5 : 4), [
      ...records(0, 500, 5, false),
      ...records(1000, (N - 1000) / 2, 4, false),
    ]);
    expect(await state(log)).toMatchObject({ clean: false, head: 1000 });
  });
  it('a log written exactly to its end (one cycle everywhere) has its head at 0', async () => {
    const log = makeLog(N, () => 3, records(0, N / 2, 3));
    expect(await state(log)).toEqual({ clean: true, head: 0, tail: 0, zeroed: false });
  });
  it('the head near the start: the last record wraps back to the end of the ring', async () => {
    const log = makeLog(N, (bb) => (bb < 2 ? 4 : 3), [
      ...records(0, 1, 4),
      ...records(2, (N - 2) / 2, 3, false),
    ]);
    expect(await state(log)).toEqual({ clean: true, head: 2, tail: 2, zeroed: false });
    const dirty = makeLog(N, (bb) => (bb < 2 ? 4 : 3), [
      ...records(0, 1, 4, false),
      ...records(2, (N - 2) / 2, 3, false),
    ]);
    expect(await state(dirty)).toMatchObject({ clean: false, head: 2 });
  });
  it('a torn last record is dropped: the head backs up to its header', async () => {
    // An unmount record at 998, then a 4-BB record at 1000 of which only 2 BBs made it out.
    const log = makeLog(N, (bb) => (bb < 1000 ? 5 : 4), [
      ...records(0, 500, 5),
      ...records(1006, (N - 1006) / 2, 4, false),
      { at: 1000, cycle: 5, data: 4, written: 1 },
    ]);
    expect(await state(log)).toEqual({ clean: true, head: 1000, tail: 1000, zeroed: false });
  });
  it('a record of two operations is not an unmount record', async () => {
    const log = makeLog(N, () => 0, [{ at: 0, cycle: 1, unmount: true, ops: 2 }]);
    expect((await state(log)).clean).toBe(false);
  });
  it('garbage where the log should be is CORRUPT, not a hang', async () => {
    const log = new Uint8Array(N * BB).fill(0x11);
    await expect(state(log)).rejects.toMatchObject({ code: 'CORRUPT' });
  });
});
