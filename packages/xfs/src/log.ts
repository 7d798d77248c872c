import { CorruptError, FieldReader } from '@diskube/core';
import { sameUuid } from './agf.js';
import type { XfsReason } from './reasons.js';

// Sources: kernel fs/xfs/libxfs/xfs_log_format.h (struct xlog_rec_header, xlog_op_header,
// XLOG_HEADER_MAGIC_NUM, XLOG_UNMOUNT_TRANS, XLOG_HEADER_CYCLE_SIZE), fs/xfs/xfs_log_recover.c
// and xfsprogs libxlog/xfs_log_recover.c (xlog_find_zeroed, xlog_find_head,
// xlog_find_cycle_start, xlog_find_verify_cycle, xlog_find_verify_log_record, xlog_find_tail),
// fs/xfs/xfs_log_priv.h (XLOG_REC_SHIFT, XLOG_TOTAL_REC_SHIFT); "XFS Algorithms & Data
// Structures", chapter "Journaling Log".
//
// The log is a ring of 512-byte basic blocks (BBs). Every BB written in pass `c` over the ring
// starts with the cycle number `c` (the first word of each data BB is saved in the record header
// and replaced by the cycle), except a record header BB, which starts with the magic and holds
// the cycle in its second word. The head (where the next write goes) is where the cycle drops;
// a cleanly unmounted log ends, right before the head, in a record holding one operation: the
// unmount record.

export const XLOG_HEADER_MAGIC_NUM = 0xfeedbabe;
const BB = 512;
/** Bytes of data whose cycle words one header BB can save (XLOG_HEADER_CYCLE_SIZE). */
const HEADER_CYCLE_SIZE = 32 * 1024;
/** oh_flags bit of the unmount record's single operation. */
const XLOG_UNMOUNT_TRANS = 0x20;
/** Largest in-core log buffer: 256 KiB for v2 logs, 32 KiB for v1 (XLOG_MAX_RECORD_BSIZE). */
const MAX_RECORD_BBS = { v1: (32 * 1024) / BB, v2: (256 * 1024) / BB } as const;
/** In-core log buffers that can be in flight at once (XLOG_MAX_ICLOGS). */
const MAX_ICLOGS = 8;

export interface LogRecordHeader {
  cycle: number;
  version: number;
  /** Bytes of data after the header BBs. */
  len: number;
  lsn: bigint;
  tailLsn: bigint;
  numLogops: number;
  /** Size of the log buffer that wrote it (v2), for the number of header BBs. */
  size: number;
  uuid: Uint8Array;
}

/** Parse the record header in the 512-byte basic block `bytes` (at `offset` in the source). */
export function parseLogRecordHeader(bytes: Uint8Array, offset: number): LogRecordHeader {
  const f = new FieldReader<XfsReason>(bytes, 'XFS log record header', offset).need(0x144);
  const h_magicno = f.u32be(0x00);
  if (h_magicno !== XLOG_HEADER_MAGIC_NUM) {
    throw f.corrupt(`bad magic 0x${h_magicno.toString(16)}`, 0x00, 'bad-magic');
  }
  const h_version = f.u32be(0x08);
  if (h_version !== 1 && h_version !== 2)
    throw f.corrupt(`version ${h_version}`, 0x08, 'bad-version');
  const h_len = f.i32be(0x0c);
  const h_size = f.i32be(0x140);
  if (h_len < 0 || h_len > 256 * 1024) throw f.corrupt(`length ${h_len}`, 0x0c, 'bad-log-record');
  if (h_version === 2 && (h_size < 0 || h_size > 256 * 1024)) {
    throw f.corrupt(`buffer size ${h_size}`, 0x140, 'bad-log-record');
  }
  const h_num_logops = f.i32be(0x28);
  if (h_num_logops < 0) throw f.corrupt(`${h_num_logops} operations`, 0x28, 'bad-log-record');
  return {
    cycle: f.u32be(0x04),
    version: h_version,
    len: h_len,
    lsn: f.u64beBig(0x10),
    tailLsn: f.u64beBig(0x18),
    numLogops: h_num_logops,
    size: h_size,
    uuid: f.slice(0x130, 16),
  };
}

/** BBs taken by a record's header: more than one when a v2 buffer above 32 KiB wrote it. */
export function headerBBs(h: LogRecordHeader): number {
  if (h.version === 2 && h.size > HEADER_CYCLE_SIZE) return Math.ceil(h.size / HEADER_CYCLE_SIZE);
  return 1;
}

/** The cycle number stamped on a BB (xlog_get_cycle). */
export function cycleOf(bytes: Uint8Array, at = 0): number {
  const word = (o: number) =>
    ((bytes[at + o]! << 24) |
      (bytes[at + o + 1]! << 16) |
      (bytes[at + o + 2]! << 8) |
      bytes[at + o + 3]!) >>>
    0;
  const first = word(0);
  return first === XLOG_HEADER_MAGIC_NUM ? word(4) : first;
}

export interface LogState {
  clean: boolean;
  /** BB where the next record would go. */
  head: number;
  /** BB of the oldest record still needed (equal to head when clean). */
  tail: number;
  /** The whole log is zeroes: nothing was ever logged, nothing to replay. */
  zeroed: boolean;
}

/** Reads `count` BBs at BB `start` of the log (never across its end). */
export type LogReader = (start: number, count: number) => Promise<Uint8Array>;

/**
 * Find the head and tail of the log and whether it ends in an unmount record, as log recovery
 * does. Reads O(log₂ n) single BBs for the binary search plus windows of a few MiB; the only
 * scan proportional to the log size is the backwards search for the last record header, which
 * stops at the first one (records are at most 256 KiB apart in a sane log).
 */
export async function findLogState(
  read: LogReader,
  n: number,
  v2: boolean,
  uuid: Uint8Array,
  logOffset: number,
  signal?: AbortSignal,
): Promise<LogState> {
  const where = (bb: number) => ({ structure: 'XFS log', offset: logOffset + bb * BB });
  const cycle = async (bb: number) => cycleOf(await read(bb, 1));
  const recBBs = v2 ? MAX_RECORD_BBS.v2 : MAX_RECORD_BBS.v1;
  const window = Math.min(n, MAX_ICLOGS * recBBs);

  // First block in [start, start + count) with cycle `stop`, or -1 (xlog_find_verify_cycle).
  const findCycle = async (start: number, count: number, stop: number): Promise<number> => {
    const chunk = 1024;
    for (let i = start; i < start + count; i += chunk) {
      signal?.throwIfAborted();
      const k = Math.min(chunk, start + count - i);
      const bytes = await read(i, k);
      for (let j = 0; j < k; j++) if (cycleOf(bytes, j * BB) === stop) return i + j;
    }
    return -1;
  };
  // Binary search for the first block with cycle `target` after `first` (xlog_find_cycle_start):
  // cycle(first) != target, cycle(last) == target. At most log₂ n steps.
  const cycleStart = async (first: number, last: number, target: number): Promise<number> => {
    let mid = Math.floor((first + last) / 2);
    while (mid !== first && mid !== last) {
      signal?.throwIfAborted();
      if ((await cycle(mid)) === target) last = mid;
      else first = mid;
      mid = Math.floor((first + last) / 2);
    }
    return last;
  };
  // Back `last` up to the header of the record it ends, when that record is incomplete
  // (xlog_find_verify_log_record). Returns null when no header lies in [start, last).
  const verifyRecord = async (
    start: number,
    last: number,
    extra: number,
  ): Promise<number | null> => {
    if (last <= start) return null;
    const bytes = await read(start, last - start);
    for (let i = last - 1; i >= start; i--) {
      const at = (i - start) * BB;
      if (readU32(bytes, at) === XLOG_HEADER_MAGIC_NUM) {
        const h = parseLogRecordHeader(bytes.subarray(at, at + BB), logOffset + i * BB);
        checkUuid(h, i);
        if (last - i + extra !== Math.ceil(h.len / BB) + headerBBs(h)) return i;
        return last;
      }
    }
    return null;
  };
  const checkUuid = (h: LogRecordHeader, bb: number) => {
    // A null uuid is what old mkfs wrote; anything else must be this filesystem's.
    if (!h.uuid.every((b) => b === 0) && !sameUuid(h.uuid, uuid)) {
      throw new CorruptError('log record of another filesystem', {
        ...where(bb),
        reason: 'bad-uuid',
      });
    }
  };

  const first = await cycle(0);
  if (first === 0) return { clean: true, head: 0, tail: 0, zeroed: true };
  const lastCycle = await cycle(n - 1);
  let head: number;
  if (lastCycle === 0) {
    // Partly zeroed (a fresh log): the head is the first zero-cycle block (xlog_find_zeroed).
    if (first !== 1)
      throw new CorruptError(`first cycle ${first} with a zeroed end`, {
        ...where(0),
        reason: 'bad-log',
      });
    head = await cycleStart(0, n - 1, 0);
    const span = Math.min(window, head);
    const hole = await findCycle(head - span, span, 0);
    if (hole !== -1) head = hole;
    const backed = await verifyRecord(Math.max(0, head - window), head, 0);
    if (backed === null)
      throw new CorruptError('no record header before the head', {
        ...where(head),
        reason: 'bad-log',
      });
    head = backed;
  } else {
    let stop: number;
    if (first === lastCycle) {
      head = n;
      stop = lastCycle - 1;
    } else {
      stop = lastCycle;
      head = await cycleStart(0, n - 1, lastCycle);
    }
    if (head >= window) {
      const hole = await findCycle(head - window, window, stop);
      if (hole !== -1) head = hole;
    } else {
      const hole = await findCycle(n - (window - head), window - head, stop - 1);
      if (hole !== -1) head = hole;
      else {
        const early = await findCycle(0, head, stop);
        if (early !== -1) head = early;
      }
    }
    // Make sure the head does not point into the middle of a record.
    const recWindow = Math.min(n, recBBs);
    if (head >= recWindow) {
      const backed = await verifyRecord(head - recWindow, head, 0);
      if (backed === null)
        throw new CorruptError('no record header before the head', {
          ...where(head),
          reason: 'bad-log',
        });
      head = backed;
    } else {
      const backed = await verifyRecord(0, head, 0);
      if (backed !== null) head = backed;
      else {
        const wrapped = await verifyRecord(n - (recWindow - head), n, head);
        if (wrapped === null)
          throw new CorruptError('no record header before the head', {
            ...where(head),
            reason: 'bad-log',
          });
        if (wrapped !== n) head = wrapped;
      }
    }
    if (head === n) head = 0;
  }

  // The last record before the head (xlog_find_tail): search backwards, wrapping once.
  let at = -1;
  for (const [from, to] of [
    [head - 1, 0],
    [n - 1, head],
  ] as const) {
    for (let i = from; i >= to && at === -1; ) {
      signal?.throwIfAborted();
      const k = Math.min(1024, i - to + 1);
      const bytes = await read(i - k + 1, k);
      for (let j = k - 1; j >= 0; j--) {
        if (readU32(bytes, j * BB) === XLOG_HEADER_MAGIC_NUM) {
          at = i - k + 1 + j;
          break;
        }
      }
      i -= k;
    }
    if (at !== -1) break;
  }
  if (at === -1) {
    if (head === 0 && first === 0) return { clean: true, head: 0, tail: 0, zeroed: true };
    throw new CorruptError('no log record header found', { ...where(head), reason: 'bad-log' });
  }
  const h = parseLogRecordHeader(await read(at, 1), logOffset + at * BB);
  checkUuid(h, at);
  const tail = Number(h.tailLsn & 0xffffffffn);
  const after = (at + headerBBs(h) + Math.ceil(h.len / BB)) % n;
  if (head === after && h.numLogops === 1) {
    // The single operation header starts the first data BB; oh_flags is its byte 9 (the first
    // word, oh_tid, carries the cycle stamp instead, which does not matter here).
    const op = await read((at + headerBBs(h)) % n, 1);
    if ((op[9]! & XLOG_UNMOUNT_TRANS) !== 0)
      return { clean: true, head, tail: head, zeroed: false };
  }
  return { clean: false, head, tail, zeroed: false };
}

function readU32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0
  );
}
