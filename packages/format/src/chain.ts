import { Bitmap } from '@diskube/bitmap';
import { CorruptError, InvalidArgumentError } from '@diskube/core';
import { bytesEqual } from './bytes.js';
import { DIGEST_LENGTH } from './header.js';
import type { BackupReader } from './reader.js';

// Sources: SPEC.md §8 "State of a backup" and "Making an incremental". An incremental's digest
// table covers only its stored blocks (§6.5), so the digests of a backup's whole state are spread
// over the chain: each used non-zero block's digest is in the newest backup that stored it.

/**
 * Check that `chain` (oldest first) is a snapshot followed by incrementals each made from the one
 * before, all of the same geometry. An empty chain (`empty-chain`) or one that does not start with
 * a snapshot (`incomplete-chain`) is the caller's mistake: `INVALID_ARGUMENT`. A backup whose
 * parent id or geometry contradicts the backup before it is `CORRUPT` with reason `broken-chain`:
 * the files themselves disagree.
 */
export function checkChain(chain: readonly BackupReader[]): void {
  const first = chain[0];
  if (first === undefined)
    throw new InvalidArgumentError('empty backup chain', { reason: 'empty-chain' });
  if (first.header.kind !== 'snapshot') {
    throw new InvalidArgumentError(
      `${first.path} is an incremental; the chain must start with a snapshot`,
      { reason: 'incomplete-chain' },
    );
  }
  for (let k = 1; k < chain.length; k++) {
    const b = chain[k]!;
    const p = chain[k - 1]!;
    if (b.header.kind !== 'incremental' || !bytesEqual(b.header.parentId, p.header.backupId)) {
      throw new CorruptError(`${b.path} was not made from ${p.path}`, {
        structure: 'backup header',
        offset: 0x28,
        reason: 'broken-chain',
      });
    }
    if (
      b.header.blockCount !== p.header.blockCount ||
      b.header.blockSize !== p.header.blockSize ||
      b.header.sourceSize !== p.header.sourceSize
    ) {
      throw new CorruptError(`${b.path} and ${p.path} differ in geometry`, {
        structure: 'backup header',
        reason: 'broken-chain',
      });
    }
  }
}

/** The state of a chain's newest backup over one window of blocks (window-relative bits). */
export interface StateWindow {
  start: number;
  length: number;
  /** `U` of the state. */
  used: Bitmap;
  /** `Z` of the state (incrementals' ZERO sections already describe the whole state). */
  zero: Bitmap;
  /** `U ∖ Z`: the blocks with a digest. */
  digested: Bitmap;
  /** 16 bytes per block of `digested`, in ascending block order. */
  digests: Uint8Array;
}

/**
 * The digests of a backup's whole state kept outside the backup (a writer's cache, see
 * `openStateDigests`): 16 bytes per used non-zero block of the state, in ascending block order.
 */
export interface StateDigestSource {
  /** Fill `into` from byte `offset` of the digest list. */
  read(offset: number, into: Uint8Array): Promise<void>;
}

/**
 * What the next incremental needs to know of the state of the newest backup of a chain, one
 * window of blocks at a time: which blocks are used, which are zero, and the digest of every used
 * non-zero block. The digests come from a `StateDigestSource` when the caller has one; otherwise
 * from the chain's digest tables, merging the tables of the whole chain window by window, and for
 * a backup without a table (format 2.1) by hashing the blocks it holds that the state still
 * uses (read from its frames). Memory is one window, whatever the disk.
 */
export class ChainState {
  private cursorBlock = 0;
  private cursorRank = 0;
  private current: StateWindow | null = null;

  private constructor(
    private readonly chain: readonly BackupReader[],
    /** The newest backup of the chain (the parent of the next incremental). */
    readonly newest: BackupReader,
    private readonly source: StateDigestSource | null,
  ) {}

  /**
   * Check `chain` (oldest first, as `checkChain` wants) and prepare to resolve its state.
   * `stateDigests`: the newest backup's state digests from a cache (the caller checked that they
   * belong to it and are whole); the chain's tables and frames are then not read.
   */
  static fromChain(
    chain: readonly BackupReader[],
    options: { stateDigests?: StateDigestSource | null } = {},
  ): ChainState {
    checkChain(chain);
    const windows = chain[0]!.windowBlocks;
    for (const b of chain) {
      if (b.windowBlocks !== windows)
        throw new InvalidArgumentError('the chain was opened with different window sizes', {
          reason: 'geometry-mismatch',
        });
    }
    return new ChainState(chain, chain[chain.length - 1]!, options.stateDigests ?? null);
  }

  get windowBlocks(): number {
    return this.newest.windowBlocks;
  }
  get windowCount(): number {
    return this.newest.windowCount;
  }

  /**
   * Resolve window `w` of the state. Like the reverse restore, the backups are visited newest
   * first and each block takes its digest from the first one that stored it; a block that backup
   * changed without storing (zeroed or freed there) contradicts the newer backups' bitmaps and is
   * `CORRUPT`. Memory: one digest per used non-zero block of the window.
   */
  async window(w: number): Promise<StateWindow> {
    if (this.current !== null && this.current.start === w * this.windowBlocks) return this.current;
    const top = await this.newest.window(w);
    const digested = top.digested;
    const digests = new Uint8Array(digested.count() * DIGEST_LENGTH);
    if (this.source !== null) await this.source.read(top.digestedBefore * DIGEST_LENGTH, digests);
    const unresolved = this.source === null ? digested.clone() : new Bitmap(digested.length);
    for (let k = this.chain.length - 1; k >= 0 && !unresolved.isEmpty(); k--) {
      const b = this.chain[k]!;
      const win = await b.window(w);
      const take = win.stored.clone().and(unresolved);
      if (!take.isEmpty()) {
        const table = await b.windowDigests(win, take);
        // Runs of `take` are consecutive in both `stored` and `digested` (both are supersets),
        // so each run is one copy; ranks advance with the runs.
        let srcBlock = 0;
        let srcRank = 0;
        let dstBlock = 0;
        let dstRank = 0;
        for (const [s, len] of take.runs()) {
          srcRank += win.stored.countRange(srcBlock, s - srcBlock);
          srcBlock = s;
          dstRank += digested.countRange(dstBlock, s - dstBlock);
          dstBlock = s;
          digests.set(
            table.subarray(srcRank * DIGEST_LENGTH, (srcRank + len) * DIGEST_LENGTH),
            dstRank * DIGEST_LENGTH,
          );
        }
        unresolved.andNot(take);
      }
      // What this backup changed (a snapshot: everything) is settled here; a used non-zero block
      // still unresolved among them was zero or unused in this backup yet unchanged since.
      const settled = win.changed ?? new Bitmap(unresolved.length).setAll();
      const missing = unresolved.clone().and(settled);
      if (!missing.isEmpty()) {
        const i = win.start + missing.nextSet(0);
        throw new CorruptError(
          `block ${i} is used and non-zero in ${this.newest.path} but not stored where ${b.path} last changed it`,
          { structure: `backup chain at ${b.path}`, reason: 'inconsistent' },
        );
      }
      unresolved.andNot(settled);
    }
    this.current = {
      start: top.start,
      length: top.length,
      used: top.used,
      zero: top.zero,
      digested,
      digests,
    };
    this.cursorBlock = 0;
    this.cursorRank = 0;
    return this.current;
  }

  /**
   * Digest of used non-zero block `i` in the state, or null for zero and unused blocks; `i` must
   * lie in the window last resolved. Fastest when called with ascending `i` (a cursor advances;
   * going back restarts it).
   */
  digestOf(i: number): Uint8Array | null {
    const win = this.current;
    if (win === null || i < win.start || i >= win.start + win.length)
      throw new InvalidArgumentError(`block ${i} is not in the window resolved`, {
        reason: 'bad-block',
      });
    const j = i - win.start;
    if (!win.digested.get(j)) return null;
    if (j < this.cursorBlock) {
      this.cursorBlock = 0;
      this.cursorRank = 0;
    }
    this.cursorRank += win.digested.countRange(this.cursorBlock, j - this.cursorBlock);
    this.cursorBlock = j;
    const at = this.cursorRank * DIGEST_LENGTH;
    return win.digests.subarray(at, at + DIGEST_LENGTH);
  }
}
