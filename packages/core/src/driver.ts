import type { Bitmap } from '@diskube/bitmap';
import type { BlockSource } from './source.js';

/** A note a driver attaches to its result: something the user should know, not a failure. */
export interface Warning {
  /** Stable identifier, e.g. `bitmap-checksum` or `tail-after-filesystem`. */
  code: string;
  message: string;
  /** Byte offset in the source the warning is about, when there is one. */
  offset?: number;
  /**
   * For a warning that stands for an error the driver absorbed (`assumed-used`): that error's
   * `reason`, e.g. `needs-recovery`, so programs need not parse the message.
   */
  reason?: string;
}

export interface ProbeResult {
  /** Filesystem name as shown to users, e.g. `ext4`, `ntfs`. */
  filesystem: string;
  /** Bytes per allocation block of this filesystem. */
  blockSize: number;
  /** Optional label, for display. */
  label?: string;
}

export interface UsedBlocksOptions {
  /**
   * The doubt policy, one for every driver and every layer above them:
   *
   * - **DIRTY and CORRUPT are absorbed only with this option.** When the allocation map cannot be
   *   trusted (not cleanly unmounted, a pending journal or log, hibernation, a checksum mismatch,
   *   a map shown to be wrong by a cross-check), a driver either rejects with that error or, with
   *   `assumeUsedOnDoubt`, marks every block used and adds one warning with code `assumed-used`
   *   and the absorbed error's `reason`. A driver may also just reject: the layer above
   *   (`mapDisk`) then keeps the filesystem whole with the same `assumed-used` warning.
   * - **UNSUPPORTED is never absorbed by a driver.** The layer above keeps an unsupported
   *   filesystem whole, bare or inside a partition table alike, with warning
   *   `filesystem-unsupported`, whatever this option says: copying it loses nothing.
   * - **IO and INVALID_ARGUMENT are never absorbed**: a failing disk or a caller's mistake is
   *   not a question of trust.
   * - Once any evidence shows a map to be wrong, nothing in that map is trusted: the result is
   *   CORRUPT (or all used under this option), never "fix the blocks we noticed and trust the
   *   rest".
   */
  assumeUsedOnDoubt?: boolean;
  /**
   * Also walk the filesystem's own references (inodes' extent trees and indirect blocks, MFT
   * records' runlists, …), as fsck's first pass does, and prove every referenced block is in the
   * map. A referenced block the map calls free is added to `used` and reported in the result's
   * `crossCheck` and with a `referenced-free` warning naming the owner (inode, record). Drivers
   * without a walk ignore it (`crossCheck` stays absent). Costs a read of all file metadata.
   */
  crossCheck?: boolean;
  /** Cancels long scans. */
  signal?: AbortSignal;
}

/** What a `crossCheck` walk found. */
export interface CrossCheckReport {
  /** Block references followed (each extent or indirect entry counts its blocks). */
  referencedBlocks: number;
  /** Objects walked (inodes, MFT records). */
  objects: number;
  /** Referenced blocks the allocation map called free: now kept. */
  missingBlocks: number;
  /** The first few owners of missing blocks (bounded), e.g. `inode 12 /etc/passwd`. */
  missing: Array<{ owner: string; block: number; count: number }>;
}

/** How the bytes of the source after `blockCount × blockSize` are to be treated. */
export interface Tail {
  /** Byte offset where the tail starts: `blockCount × blockSize`. */
  offset: number;
  /** Tail length in bytes: `source.size − offset` (may be 0). */
  length: number;
  /** True when the tail must be backed up (e.g. NTFS's backup boot sector lives there). */
  used: boolean;
  /** Why, in a few words, for display and for the audit trail. */
  reason: string;
}

export interface UsedBlocks {
  /** Filesystem name, e.g. `ext4`. */
  filesystem: string;
  /** Bytes per block of `used` (the filesystem's allocation unit: block or cluster). */
  blockSize: number;
  /** Blocks covered by `used`, starting at byte 0 of the source. */
  blockCount: number;
  /** One bit per block, set when the block holds data or metadata that must be kept. */
  used: Bitmap;
  /**
   * The bytes of the source beyond `blockCount × blockSize`, reported explicitly so no caller has
   * to guess. `blockCount × blockSize ≤ source.size` always holds.
   */
  tail: Tail;
  warnings: Warning[];
  /** Facts for display (`label`, `uuid`, `features`, …). Values are plain JSON. */
  facts: Record<string, string | number | boolean | string[]>;
  /** Present when `crossCheck` was asked for and the driver has a walk. */
  crossCheck?: CrossCheckReport;
}

/**
 * A filesystem parser. One object per filesystem, found by the CLI through a registry list,
 * so adding a filesystem is a new package plus one line.
 *
 * Contract:
 * - `probe` is cheap (a few small reads) and never throws or rejects: on garbage, on a truncated
 *   source, on a read error it resolves `null`.
 * - `usedBlocks` either resolves a result whose `used` bitmap covers every block the filesystem
 *   uses (never fewer: a missed block is silent data loss) or rejects with a `DiskubeError`
 *   (`CORRUPT`, `UNSUPPORTED`, `DIRTY`, `IO`). It must not hang or allocate without bound on
 *   hostile input: every count and offset read from disk is checked before use.
 * - `used.length === blockCount` and `blockCount × blockSize + tail.length === source.size`.
 */
export interface FilesystemDriver {
  readonly name: string;
  probe(source: BlockSource): Promise<ProbeResult | null>;
  usedBlocks(source: BlockSource, options?: UsedBlocksOptions): Promise<UsedBlocks>;
}
