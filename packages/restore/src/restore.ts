import { Bitmap } from '@diskube/bitmap';
import { InvalidArgumentError } from '@diskube/core';
import type { BackupReader, Progress } from '@diskube/format';
import { checkChain, discoverChain } from './chain.js';
import { fileTarget, type RestoreTarget } from './target.js';

export type RestoreStrategy = 'reverse' | 'patch';

export interface RestoreOptions {
  /** Backups oldest first: a snapshot, then incrementals each made from the previous one. */
  chain: readonly BackupReader[];
  /** A path (raw image file, or a block device) or any `RestoreTarget`. */
  target: string | RestoreTarget;
  /** `reverse` (default) writes every block once; `patch` replays the chain in order. */
  strategy?: RestoreStrategy;
  /**
   * Write zeros over unused and all-zero blocks (once each) instead of leaving holes. Required
   * for targets that are not known to read back zeros (devices, existing files).
   */
  zeroUnused?: boolean;
  /** Check each block against the backup's digest before writing it. Default true. */
  verifyDigests?: boolean;
  /** Replace an existing file at a path target. Default false. */
  overwrite?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /** Test mode: count writes per block (saturating at 255) in `RestoreResult.writeCounts`. */
  recordWrites?: boolean;
}

export interface RestoreResult {
  strategy: RestoreStrategy;
  /** Bytes read from backup files (stored frame bytes and tails). */
  bytesRead: number;
  /** Bytes written to the target, zeros included. */
  bytesWritten: number;
  /** Block writes carrying data (a block written twice counts twice). */
  dataBlocksWritten: number;
  /** Block writes of zeros. */
  zeroBlocksWritten: number;
  framesRead: number;
  writeCounts: Uint8Array | null;
}

/** Writes kept in flight at once: small scattered writes wait on the I/O thread pool otherwise. */
const WRITES_IN_FLIGHT = 4;

/** Merges block writes at adjacent offsets into larger writes, several in flight. */
class Writer {
  private readonly spare: Uint8Array[] = [];
  private buffer: Uint8Array;
  private start = -1;
  private length = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown = null;
  bytesWritten = 0;
  constructor(
    private readonly target: RestoreTarget,
    private readonly blockSize: number,
    private readonly counts: Uint8Array | null,
    private readonly progress: (n: number) => void,
    private readonly capacity = Math.max(1 << 20, blockSize),
  ) {
    this.buffer = new Uint8Array(capacity);
  }
  /** Queue consecutive blocks starting at block `first` (bytes: a whole number of blocks). */
  async run(first: number, bytes: Uint8Array): Promise<void> {
    const bs = this.blockSize;
    if (this.counts !== null) {
      for (let i = first; i < first + bytes.length / bs; i++)
        if (this.counts[i]! < 255) this.counts[i]!++;
    }
    let offset = first * bs;
    let rest = bytes;
    while (rest.length > 0) {
      if (
        this.length > 0 &&
        (offset !== this.start + this.length || this.length === this.buffer.length)
      )
        await this.submit();
      if (this.length === 0) this.start = offset;
      // Whole blocks only, as many as fit.
      const take = Math.min(rest.length, Math.floor((this.buffer.length - this.length) / bs) * bs);
      this.buffer.set(rest.subarray(0, take), this.length);
      this.length += take;
      offset += take;
      rest = rest.subarray(take);
    }
  }
  /** Start writing the pending run; wait only when too many writes are in flight. */
  private async submit(): Promise<void> {
    if (this.length === 0) return;
    const buffer = this.buffer;
    const { start, length } = this;
    this.buffer = this.spare.pop() ?? new Uint8Array(this.capacity);
    this.length = 0;
    const write: Promise<void> = this.target.write(start, buffer.subarray(0, length)).then(
      () => {
        this.inflight.delete(write);
        this.spare.push(buffer);
        this.bytesWritten += length;
        this.progress(length);
      },
      (error: unknown) => {
        this.inflight.delete(write);
        this.failure ??= error;
      },
    );
    this.inflight.add(write);
    while (this.inflight.size >= WRITES_IN_FLIGHT) await Promise.race(this.inflight);
    if (this.failure !== null) throw this.failure;
  }
  /** Write what is pending and wait for every write to land. */
  async flush(): Promise<void> {
    await this.submit();
    await Promise.all(this.inflight);
    if (this.failure !== null) throw this.failure;
  }
  /** Write zeros over the set runs of `blocks` (bit `j` is block `start + j`), in ascending order. */
  async zeros(blocks: Bitmap, start = 0): Promise<number> {
    await this.flush();
    const zero = new Uint8Array(Math.max(1 << 20, this.blockSize));
    const perWrite = zero.length / this.blockSize;
    let written = 0;
    for (const [s0, len] of blocks.runs()) {
      const s = start + s0;
      for (let at = s; at < s + len; at += perWrite) {
        const n = Math.min(perWrite, s + len - at);
        await this.target.write(at * this.blockSize, zero.subarray(0, n * this.blockSize));
        this.bytesWritten += n * this.blockSize;
        this.progress(n * this.blockSize);
        if (this.counts !== null)
          for (let i = at; i < at + n; i++) if (this.counts[i]! < 255) this.counts[i]!++;
        written += n;
      }
    }
    return written;
  }
  async raw(offset: number, bytes: Uint8Array): Promise<void> {
    await this.flush();
    await this.target.write(offset, bytes);
    this.bytesWritten += bytes.length;
    this.progress(bytes.length);
  }
}

/**
 * Rebuild the image of the newest backup in `chain` onto `target`.
 *
 * reverse: unrestored = every block; newest backup first, write its stored blocks that are still
 * unrestored, then drop its changed blocks and its unused blocks from unrestored; the snapshot
 * supplies what is left. Each used non-zero block is written exactly once, and each backup's
 * frames are read in file order.
 *
 * patch: write the snapshot, then each incremental's stored blocks over it and zeros over its
 * changed-to-zero and newly unused blocks. Simple, the measured baseline.
 */
export async function restoreImage(options: RestoreOptions): Promise<RestoreResult> {
  const { chain } = options;
  checkChain(chain);
  const newest = chain[chain.length - 1]!;
  const h = newest.header;
  const strategy = options.strategy ?? 'reverse';
  const zeroUnused = options.zeroUnused ?? false;
  const verifyDigests = options.verifyDigests ?? true;
  const target =
    typeof options.target === 'string'
      ? await fileTarget(options.target, h.sourceSize, { overwrite: options.overwrite ?? false })
      : options.target;
  try {
    if (target.size !== h.sourceSize) {
      throw new InvalidArgumentError(
        `target holds ${target.size} bytes, the image is ${h.sourceSize}`,
        { reason: 'target-size' },
      );
    }
    const zeroUsed = target.needsZeroBlocks === true && !zeroUnused;
    if (zeroUsed && strategy !== 'reverse') {
      throw new InvalidArgumentError(
        'this target shows a backing file under unwritten blocks: restore it with the reverse strategy',
        { reason: 'needs-reverse' },
      );
    }
    if (!zeroUnused && !target.zeroed) {
      throw new InvalidArgumentError('target does not read back zeros: restore with zeroUnused', {
        reason: 'needs-zero-unused',
      });
    }
    const before = chain.map((r) => ({ ...r.stats }));
    const counts = options.recordWrites ? new Uint8Array(h.blockCount) : null;
    const bs = h.blockSize;

    // Every backup of a chain is read window by window (the same windows: `checkChain` checked
    // the geometry), so memory holds a window of bitmaps and digests, never a whole table.
    const windowCount = newest.windowCount;
    for (const b of chain) {
      if (b.windowBlocks !== newest.windowBlocks)
        throw new InvalidArgumentError('the chain was opened with different window sizes', {
          reason: 'window-mismatch',
        });
    }

    // Plan, to report progress against a known total.
    const tail = h.tailLength > 0 && (h.tailStored || zeroUnused) ? h.tailLength : 0;
    let plannedBlocks: number;
    if (strategy === 'reverse') {
      plannedBlocks = zeroUnused ? h.blockCount : newest.digestedBlocks;
    } else {
      plannedBlocks = chain.reduce((n, r, k) => {
        // Frame blocks and repeats are written; the rest of the changed blocks are zeroed.
        const held = r.storedBlocks + r.repeatedBlocks;
        return n + held + (k > 0 ? r.changedBlocks! - held : 0);
      }, 0);
      if (zeroUnused)
        plannedBlocks += h.blockCount - chain[0]!.storedBlocks - chain[0]!.repeatedBlocks;
    }
    const bytesTotal = plannedBlocks * bs + tail;
    let bytesDone = 0;
    const progress = (n: number) => {
      bytesDone += n;
      options.onProgress?.({ bytesDone, bytesTotal });
    };
    const out = new Writer(target, bs, counts, progress);
    let dataBlocks = 0;
    let zeroBlocks = 0;
    const writeRun = async (first: number, bytes: Uint8Array) => {
      options.signal?.throwIfAborted();
      await out.run(first, bytes);
      dataBlocks += bytes.length / bs;
    };

    for (let w = 0; w < windowCount; w++) {
      if (strategy === 'reverse') {
        const top = await newest.window(w);
        const unrestored = new Bitmap(top.length).setAll();
        const written = new Bitmap(top.length);
        for (let k = chain.length - 1; k >= 0; k--) {
          const b = chain[k]!;
          const win = await b.window(w);
          const select = win.stored.clone().and(unrestored);
          written.or(select);
          await b.forEachStoredRunIn(win, writeRun, { select, verifyDigests });
          if (win.changed !== null) unrestored.andNot(win.changed);
          unrestored.and(win.used);
          if (unrestored.isEmpty()) break;
        }
        // Writes of one window go to distinct blocks; they may stay in flight across windows.
        if (zeroUnused) zeroBlocks += await out.zeros(written.not(), top.start);
        // Used blocks of zeros, which a snapshot does not store: over a backing file they
        // must be written, or its bytes would show through.
        else if (zeroUsed)
          zeroBlocks += await out.zeros(top.used.clone().andNot(written), top.start);
      } else {
        // Writes of one backup go to distinct blocks and may overlap in flight; a later backup
        // rewrites the same blocks, so each backup's writes must land before the next begins.
        const base = await chain[0]!.window(w);
        await chain[0]!.forEachStoredRunIn(base, writeRun, { verifyDigests });
        await out.flush();
        if (zeroUnused) zeroBlocks += await out.zeros(base.stored.clone().not(), base.start);
        for (const b of chain.slice(1)) {
          const win = await b.window(w);
          await b.forEachStoredRunIn(win, writeRun, { verifyDigests });
          await out.flush();
          // Blocks that became zero or unused: the earlier data under them must go.
          zeroBlocks += await out.zeros(win.changed!.clone().andNot(win.stored), win.start);
        }
      }
    }
    await out.flush();
    if (h.tailLength > 0) {
      const bytes = await newest.readTail();
      if (bytes !== null) await out.raw(h.blockCount * bs, bytes);
      else if (zeroUnused) await out.raw(h.blockCount * bs, new Uint8Array(h.tailLength));
    }
    await target.finish();
    return {
      strategy,
      bytesRead: chain.reduce((n, r, k) => n + r.stats.bytesRead - before[k]!.bytesRead, 0),
      framesRead: chain.reduce((n, r, k) => n + r.stats.framesRead - before[k]!.framesRead, 0),
      bytesWritten: out.bytesWritten,
      dataBlocksWritten: dataBlocks,
      zeroBlocksWritten: zeroBlocks,
      writeCounts: counts,
    };
  } catch (error) {
    await target.abort();
    throw error;
  }
}

/**
 * Find the chain of the backup at `path` (see `discoverChain`), restore its state onto `target`
 * and close the backups. The one call the CLI's `restore` needs.
 */
export async function restoreFromPath(
  path: string,
  options: Omit<RestoreOptions, 'chain'>,
): Promise<RestoreResult & { chain: string[] }> {
  const chain = await discoverChain(path);
  try {
    const result = await restoreImage({ ...options, chain });
    return { ...result, chain: chain.map((r) => r.path) };
  } finally {
    await Promise.all(chain.map((r) => r.close()));
  }
}
