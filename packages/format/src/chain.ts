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

/**
 * What the next incremental needs to know of the state of the newest backup of a chain: which
 * blocks are used, which are zero, and the digest of every used non-zero block. Built from the
 * chain's bitmaps and digest tables only; no block data is read.
 */
export class ChainState {
  private cursorBlock = 0;
  private cursorRank = 0;

  private constructor(
    /** The newest backup of the chain (the parent of the next incremental). */
    readonly newest: BackupReader,
    /** `U` of the state. */
    readonly used: Bitmap,
    /** `Z` of the state (incrementals' ZERO sections already describe the whole state). */
    readonly zero: Bitmap,
    /** `U ∖ Z`: the blocks with a digest. */
    readonly digested: Bitmap,
    /** 16 bytes per block of `digested`, in ascending block order. */
    readonly digests: Uint8Array,
  ) {}

  /**
   * Resolve the state of `chain`'s newest backup (chain oldest first, as `checkChain` wants).
   * Like the reverse restore, the backups are visited newest first and each block takes its
   * digest from the first one that stored it; a block that backup changed without storing
   * (zeroed or freed there) contradicts the newer backups' bitmaps and is `CORRUPT`. Memory: one
   * digest per used non-zero block (none extra for a chain of one snapshot).
   */
  static fromChain(chain: readonly BackupReader[]): ChainState {
    checkChain(chain);
    const newest = chain[chain.length - 1]!;
    const digested = newest.digested;
    if (chain.length === 1)
      return new ChainState(newest, newest.used, newest.zero, digested, newest.digests);
    const digests = new Uint8Array(digested.count() * DIGEST_LENGTH);
    const unresolved = digested.clone();
    for (let k = chain.length - 1; k >= 0 && !unresolved.isEmpty(); k--) {
      const b = chain[k]!;
      const take = b.stored.clone().and(unresolved);
      // Runs of `take` are consecutive in both `b.stored` and `digested` (both are supersets),
      // so each run is one copy; ranks advance with the runs.
      let srcBlock = 0;
      let srcRank = 0;
      let dstBlock = 0;
      let dstRank = 0;
      for (const [s, len] of take.runs()) {
        srcRank += b.stored.countRange(srcBlock, s - srcBlock);
        srcBlock = s;
        dstRank += digested.countRange(dstBlock, s - dstBlock);
        dstBlock = s;
        digests.set(
          b.digests.subarray(srcRank * DIGEST_LENGTH, (srcRank + len) * DIGEST_LENGTH),
          dstRank * DIGEST_LENGTH,
        );
      }
      unresolved.andNot(take);
      // What this backup changed (a snapshot: everything) is settled here; a used non-zero block
      // still unresolved among them was zero or unused in this backup yet unchanged since.
      const settled = b.changed ?? new Bitmap(unresolved.length).setAll();
      const missing = unresolved.clone().and(settled);
      if (!missing.isEmpty()) {
        const i = missing.nextSet(0);
        throw new CorruptError(
          `block ${i} is used and non-zero in ${newest.path} but not stored where ${b.path} last changed it`,
          { structure: `backup chain at ${b.path}`, reason: 'inconsistent' },
        );
      }
      unresolved.andNot(settled);
    }
    return new ChainState(newest, newest.used, newest.zero, digested, digests);
  }

  /**
   * Digest of used non-zero block `i` in the state, or null for zero and unused blocks. Fastest
   * when called with ascending `i` (a cursor advances; going back restarts it).
   */
  digestOf(i: number): Uint8Array | null {
    if (!this.digested.get(i)) return null;
    if (i < this.cursorBlock) {
      this.cursorBlock = 0;
      this.cursorRank = 0;
    }
    this.cursorRank += this.digested.countRange(this.cursorBlock, i - this.cursorBlock);
    this.cursorBlock = i;
    const at = this.cursorRank * DIGEST_LENGTH;
    return this.digests.subarray(at, at + DIGEST_LENGTH);
  }
}
