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
   * When the metadata cannot be trusted (dirty filesystem, pending journal, hibernation, a
   * checksum mismatch the driver could otherwise only refuse), mark every block used and add a
   * warning instead of rejecting. The CLI's full-copy fallback sets this.
   */
  assumeUsedOnDoubt?: boolean;
  /** Cancels long scans. */
  signal?: AbortSignal;
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
