import { Bitmap } from '@diskube/bitmap';
import { InvalidArgumentError } from '@diskube/core';
import type { BackupReader, Progress } from '@diskube/format';
import { checkChain } from './chain.js';
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

/** Merges block writes at adjacent offsets into larger writes. */
class Writer {
  private buffer: Uint8Array;
  private start = -1;
  private length = 0;
  bytesWritten = 0;
  constructor(
    private readonly target: RestoreTarget,
    private readonly blockSize: number,
    private readonly counts: Uint8Array | null,
    private readonly progress: (n: number) => void,
    capacity = 1 << 20,
  ) {
    this.buffer = new Uint8Array(Math.max(capacity, blockSize));
  }
  async block(index: number, bytes: Uint8Array): Promise<void> {
    const offset = index * this.blockSize;
    if (
      this.length > 0 &&
      (offset !== this.start + this.length || this.length + bytes.length > this.buffer.length)
    )
      await this.flush();
    if (this.length === 0) this.start = offset;
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    if (this.counts !== null && this.counts[index]! < 255) this.counts[index]!++;
  }
  async flush(): Promise<void> {
    if (this.length === 0) return;
    await this.target.write(this.start, this.buffer.subarray(0, this.length));
    this.bytesWritten += this.length;
    this.progress(this.length);
    this.length = 0;
  }
  /** Write zeros over the set runs of `blocks`, in ascending order. */
  async zeros(blocks: Bitmap): Promise<number> {
    await this.flush();
    const zero = new Uint8Array(Math.max(1 << 20, this.blockSize));
    const perWrite = zero.length / this.blockSize;
    let written = 0;
    for (const [s, len] of blocks.runs()) {
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
    if (!zeroUnused && !target.zeroed) {
      throw new InvalidArgumentError('target does not read back zeros: restore with zeroUnused', {
        reason: 'needs-zero-unused',
      });
    }
    const before = chain.map((r) => ({ ...r.stats }));
    const counts = options.recordWrites ? new Uint8Array(h.blockCount) : null;
    const bs = h.blockSize;

    // Plan, to report progress against a known total.
    const tail = h.tailLength > 0 && (h.tailStored || zeroUnused) ? h.tailLength : 0;
    let plannedBlocks: number;
    if (strategy === 'reverse') {
      plannedBlocks = zeroUnused ? h.blockCount : newest.digested.count();
    } else {
      plannedBlocks = chain.reduce(
        (n, r, k) => n + r.stored.count() + (k > 0 ? r.changed!.count() - r.stored.count() : 0),
        0,
      );
      if (zeroUnused) plannedBlocks += h.blockCount - chain[0]!.stored.count();
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
    const writeBlock = async (i: number, block: Uint8Array) => {
      options.signal?.throwIfAborted();
      await out.block(i, block);
      dataBlocks++;
    };

    if (strategy === 'reverse') {
      const unrestored = new Bitmap(h.blockCount).setAll();
      const written = new Bitmap(h.blockCount);
      for (let k = chain.length - 1; k >= 0; k--) {
        const b = chain[k]!;
        const select = b.stored.clone().and(unrestored);
        written.or(select);
        await b.forEachStoredBlock(writeBlock, { select, verifyDigests });
        await out.flush();
        if (b.changed !== null) unrestored.andNot(b.changed);
        unrestored.and(b.used);
        if (unrestored.isEmpty()) break;
      }
      if (zeroUnused) zeroBlocks += await out.zeros(written.not());
    } else {
      const base = chain[0]!;
      await base.forEachStoredBlock(writeBlock, { verifyDigests });
      if (zeroUnused) zeroBlocks += await out.zeros(base.stored.clone().not());
      for (const b of chain.slice(1)) {
        await b.forEachStoredBlock(writeBlock, { verifyDigests });
        // Blocks that became zero or unused: the earlier data under them must go.
        zeroBlocks += await out.zeros(b.changed!.clone().andNot(b.stored));
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
