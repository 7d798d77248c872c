import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, CorruptError } from '@diskube/core';
import { ByteStream, pushVarint } from './bitmap-codec.js';
import { DIGEST_LENGTH } from './header.js';
import type { FormatReason } from './reasons.js';
import { SECTION_NAMES } from './section.js';

// Sources: SPEC.md §6.8 "REPT: repeated blocks" (format 2.2). The payload lists runs of repeated
// blocks in ascending order, three LEB128 values each: the gap since the end of the run before
// (the first run: its first block), `2 × count + mode`, and the ordinal (§5) of the stored block
// its first block repeats; mode 0: the run's blocks repeat consecutive stored blocks, mode 1: they
// all repeat that one.

const STRUCTURE = SECTION_NAMES.REPT;
const FLUSH_BYTES = 64 << 10;

/** A run of repeated blocks: `count` blocks from `block`, repeating from `target` on. */
interface Run {
  block: number;
  count: number;
  /** 0: targets `target, target + 1, …`; 1: every block repeats `target`. */
  mode: number;
  target: number;
}

/** Builds a REPT payload, block by block in ascending order, into `out`. */
export class RepeatEncoder {
  private end = 0;
  private run: Run | null = null;
  private pending: number[] = [];
  /** Repeated blocks added. */
  count = 0;
  constructor(private readonly out: { push(bytes: Uint8Array): Promise<void>; length: number }) {}

  /** Block `block` (above every block added before) repeats stored block `target`. */
  add(block: number, target: number): void {
    this.count++;
    const r = this.run;
    if (r !== null && block === r.block + r.count) {
      if (r.count === 1 && (target === r.target + 1 || target === r.target)) {
        r.mode = target === r.target ? 1 : 0;
        r.count++;
        return;
      }
      if (r.count > 1 && target === (r.mode === 0 ? r.target + r.count : r.target)) {
        r.count++;
        return;
      }
    }
    this.close();
    this.run = { block, count: 1, mode: 0, target };
  }

  private close(): void {
    const r = this.run;
    if (r === null) return;
    pushVarint(this.pending, r.block - this.end);
    pushVarint(this.pending, 2 * r.count + r.mode);
    pushVarint(this.pending, r.target);
    this.end = r.block + r.count;
    this.run = null;
  }

  /** Hand pending bytes to `out` once there are enough of them. */
  async drain(): Promise<void> {
    if (this.pending.length >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bytes = Uint8Array.from(this.pending);
    this.pending = [];
    await this.out.push(bytes);
  }

  /** The payload's length once everything is added. */
  async finish(): Promise<number> {
    this.close();
    await this.flush();
    return this.out.length;
  }
}

/** Slots a `BlockIndex` holds at most: 24 MiB, about 4 GiB of distinct 4 KiB blocks. */
export const BLOCK_INDEX_MAX_SLOTS = 1 << 20;
const PROBES = 8;

/**
 * Where each distinct stored block went: digest → ordinal, in an open-addressing table (24 bytes a
 * slot) that doubles as it fills, up to `BLOCK_INDEX_MAX_SLOTS`, so memory follows the blocks
 * stored and stops growing there. At the cap, when the probes of a digest find no free slot, the
 * oldest of them is replaced: a block whose entry was dropped is simply stored again.
 */
export class BlockIndex {
  private keys: Uint8Array;
  private ordinals: Float64Array;
  private mask: number;
  private count = 0;

  constructor(slots = 1024) {
    this.keys = new Uint8Array(slots * DIGEST_LENGTH);
    this.ordinals = new Float64Array(slots).fill(-1);
    this.mask = slots - 1;
  }

  /** Slots allocated (for tests). */
  get slots(): number {
    return this.ordinals.length;
  }

  private home(d: Uint8Array): number {
    return (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) & this.mask;
  }

  private matches(slot: number, d: Uint8Array): boolean {
    const at = slot * DIGEST_LENGTH;
    for (let k = 0; k < DIGEST_LENGTH; k++) if (this.keys[at + k] !== d[k]) return false;
    return true;
  }

  /** The ordinal of the stored block with digest `d`, or -1. */
  find(d: Uint8Array): number {
    const home = this.home(d);
    for (let p = 0; p < PROBES; p++) {
      const slot = (home + p) & this.mask;
      const o = this.ordinals[slot]!;
      if (o < 0) return -1;
      if (this.matches(slot, d)) return o;
    }
    return -1;
  }

  /** Record that the block with digest `d` is stored with ordinal `ordinal`. */
  add(d: Uint8Array, ordinal: number): void {
    const growing = this.ordinals.length < BLOCK_INDEX_MAX_SLOTS;
    if (growing && this.count >= this.ordinals.length / 2) this.grow();
    const home = this.home(d);
    let oldest = home;
    for (let p = 0; p < PROBES; p++) {
      const slot = (home + p) & this.mask;
      if (this.ordinals[slot]! < 0) {
        this.put(slot, d, ordinal);
        this.count++;
        return;
      }
      if (this.ordinals[slot]! < this.ordinals[oldest]!) oldest = slot;
    }
    // Every probe taken: below the cap, make room; at it, forget the oldest of them.
    if (growing) {
      this.grow();
      this.add(d, ordinal);
    } else this.put(oldest, d, ordinal);
  }

  private put(slot: number, d: Uint8Array, ordinal: number): void {
    this.keys.set(d.subarray(0, DIGEST_LENGTH), slot * DIGEST_LENGTH);
    this.ordinals[slot] = ordinal;
  }

  private grow(): void {
    const { keys, ordinals } = this;
    const slots = ordinals.length * 2;
    this.keys = new Uint8Array(slots * DIGEST_LENGTH);
    this.ordinals = new Float64Array(slots).fill(-1);
    this.mask = slots - 1;
    this.count = 0;
    for (let k = 0; k < ordinals.length; k++)
      if (ordinals[k]! >= 0)
        this.add(keys.subarray(k * DIGEST_LENGTH, (k + 1) * DIGEST_LENGTH), ordinals[k]!);
  }
}

/** The repeated blocks of one window: bit `j` is block `start + j`; one target per set bit. */
export interface RepeatWindow {
  bits: Bitmap;
  /** Ordinal of the stored block each repeated block repeats, in block order. */
  targets: Float64Array;
}

/** Where decoding stands between windows: the end of the last run read, and what is left of it. */
interface Cursor {
  at: number;
  end: number;
  carry: Run | null;
  /** Payload offset of the entry `carry` came from (for errors). */
  carryAt: number;
}

/**
 * Reads a REPT payload window by window. A sequential pass (`next`, when the backup is opened)
 * checks every run against the window's held blocks and records where each window's runs begin;
 * `window` then decodes any window again.
 */
export class RepeatSection {
  /** The cursor at the start of each window. */
  private readonly checkpoints: Cursor[] = [];
  private readonly stream: ByteStream;
  private cursor: Cursor = { at: 0, end: 0, carry: null, carryAt: 0 };

  constructor(
    private readonly file: BlockSource,
    /** File offset of the payload. */
    private readonly base: number,
    private readonly payloadLength: number,
    readonly length: number,
    readonly windowBits: number,
  ) {
    this.stream = new ByteStream(file, base, payloadLength, 0);
  }

  private corrupt(message: string, at: number, reason: FormatReason): CorruptError {
    return new CorruptError(message, { structure: STRUCTURE, offset: this.base + at, reason });
  }

  private varint(stream: ByteStream): Promise<number> {
    return stream.varint((cut, at) =>
      !cut
        ? this.corrupt(`${STRUCTURE} has an over-long number`, at, 'bad-varint')
        : this.corrupt(`${STRUCTURE} ends inside an entry`, at, 'truncated'),
    );
  }

  /** The next run from `stream` (checked against the block count), or null at the end. */
  private async readRun(stream: ByteStream, cursor: Cursor): Promise<Run | null> {
    if (stream.at >= this.payloadLength) return null;
    cursor.carryAt = stream.at;
    const block = cursor.end + (await this.varint(stream));
    const kind = await this.varint(stream);
    const target = await this.varint(stream);
    const count = Math.floor(kind / 2);
    if (count < 1) throw this.corrupt(`${STRUCTURE} has an empty run`, cursor.carryAt, 'bad-run');
    if (block + count > this.length)
      throw this.corrupt(
        `${STRUCTURE} names blocks up to ${block + count - 1} of ${this.length}`,
        cursor.carryAt,
        'out-of-range',
      );
    cursor.end = block + count;
    return { block, count, mode: kind % 2, target };
  }

  /**
   * Decode the runs of the window ending at `end` from `cursor` (which stands at the window's
   * start), calling `emit` for each piece of a run inside it; what crosses `end` stays in the
   * cursor for the next window.
   */
  private async decode(
    stream: ByteStream,
    cursor: Cursor,
    end: number,
    emit: (piece: Run, entryAt: number) => void,
  ): Promise<void> {
    for (;;) {
      const run = cursor.carry ?? (await this.readRun(stream, cursor));
      cursor.carry = null;
      if (run === null) break;
      if (run.block >= end) {
        cursor.carry = run;
        break;
      }
      const take = Math.min(run.count, end - run.block);
      emit({ ...run, count: take }, cursor.carryAt);
      if (take < run.count)
        cursor.carry = {
          block: run.block + take,
          count: run.count - take,
          mode: run.mode,
          target: run.mode === 0 ? run.target + take : run.target,
        };
      if (cursor.carry !== null) break;
    }
    cursor.at = stream.at;
  }

  private static expand(piece: Run, start: number, bits: Bitmap, targets: number[]): void {
    for (let k = 0; k < piece.count; k++) {
      bits.set(piece.block - start + k);
      targets.push(piece.mode === 0 ? piece.target + k : piece.target);
    }
  }

  /**
   * The next window of the sequential pass (call in order). `held`: the window's blocks with
   * content in this file (`U ∖ Z`, and `∩ C` for an incremental); `framedBefore`: stored blocks
   * (§5 ordinals) before the window. Every repeated block must be held, and repeat a block stored
   * before it.
   */
  async next(held: Bitmap, framedBefore: number): Promise<RepeatWindow> {
    const start = this.checkpoints.length * this.windowBits;
    this.checkpoints.push({ ...this.cursor, carry: this.cursor.carry && { ...this.cursor.carry } });
    const bits = new Bitmap(held.length);
    const targets: number[] = [];
    let heldBlock = 0;
    let heldRank = 0;
    let problem: CorruptError | null = null;
    await this.decode(this.stream, this.cursor, start + held.length, (piece, at) => {
      if (problem !== null) return;
      const j = piece.block - start;
      for (let k = 0; k < piece.count; k++) {
        if (!held.get(j + k)) {
          problem = this.corrupt(
            `${STRUCTURE} names block ${piece.block + k}, which this backup does not hold`,
            at,
            'inconsistent',
          );
          return;
        }
      }
      heldRank += held.countRange(heldBlock, j - heldBlock);
      heldBlock = j;
      // Stored blocks before the run: held blocks before it, less the repeats among them.
      const storedBefore = framedBefore + heldRank - targets.length;
      const last = piece.mode === 0 ? piece.target + piece.count - 1 : piece.target;
      if (last >= storedBefore) {
        problem = this.corrupt(
          `${STRUCTURE}: block ${piece.block} repeats stored block ${last}, which does not come before it`,
          at,
          'bad-offset',
        );
        return;
      }
      RepeatSection.expand(piece, start, bits, targets);
    });
    if (problem !== null) throw problem;
    return { bits, targets: Float64Array.from(targets) };
  }

  /** After the last window of the sequential pass: nothing may be left over. */
  finish(): void {
    if (this.cursor.carry !== null || this.stream.at < this.payloadLength)
      throw this.corrupt(
        `${STRUCTURE} has runs past the last block`,
        this.cursor.carry !== null ? this.cursor.carryAt : this.stream.at,
        'length-mismatch',
      );
  }

  /** Window `w` (after the sequential pass has checked the section). */
  async window(w: number): Promise<RepeatWindow> {
    const start = w * this.windowBits;
    const len = Math.min(this.windowBits, this.length - start);
    const saved = this.checkpoints[w]!;
    const cursor: Cursor = { ...saved, carry: saved.carry && { ...saved.carry } };
    const stream = new ByteStream(this.file, this.base, this.payloadLength, cursor.at);
    const bits = new Bitmap(len);
    const targets: number[] = [];
    await this.decode(stream, cursor, start + len, (piece) =>
      RepeatSection.expand(piece, start, bits, targets),
    );
    return { bits, targets: Float64Array.from(targets) };
  }
}
