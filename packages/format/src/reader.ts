import type { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  DiskubeError,
  InvalidArgumentError,
  IoError,
} from '@diskube/core';
import { decodeBitmap } from './bitmap-codec.js';
import { bytesEqual, toHex } from './bytes.js';
import { decompressFrame } from './compress.js';
import { crc32c } from './crc32c.js';
import { blockDigest } from './digest.js';
import { FOOTER_LENGTH, type Footer, parseFooter } from './footer.js';
import { type FrameEntry, parseFrameIndex } from './frame-index.js';
import { DIGEST_LENGTH, type Header, headerLengthFromPrefix, parseHeader } from './header.js';
import { openReadOnlySource } from './io.js';
import {
  ENCODING_RAW,
  parseSection,
  SECTION_HEADER_LENGTH,
  SECTION_NAMES,
  SECTION_TAGS,
  type SectionTag,
} from './section.js';

/** Largest in-memory section (bitmaps, digest table, index) a reader loads: 4 GiB for 2^28 digests. */
const MAX_SECTION_BYTES = 2 ** 32;
/** Tail bytes are read in pieces of this size. */
const TAIL_CHUNK = 1 << 20;

/** Bits per directory entry of a rank index. */
const RANK_STEP = 1 << 16;

/** Rank queries (`set bits before i`) in O(RANK_STEP / 32) after one pass. */
class RankIndex {
  private readonly prefix: number[] = [];
  constructor(private readonly bitmap: Bitmap) {
    let total = 0;
    for (let start = 0; start < bitmap.length; start += RANK_STEP) {
      this.prefix.push(total);
      total += bitmap.countRange(start, Math.min(RANK_STEP, bitmap.length - start));
    }
  }
  rank(i: number): number {
    const k = Math.floor(i / RANK_STEP);
    const start = k * RANK_STEP;
    return (this.prefix[k] ?? 0) + (i > start ? this.bitmap.countRange(start, i - start) : 0);
  }
}

export interface VerifyProblem {
  /** Structure that is damaged, e.g. `frame 3`, `digest table`, `block 1234`. */
  structure: string;
  offset: number | undefined;
  reason: string | undefined;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  framesChecked: number;
  blocksChecked: number;
  problems: VerifyProblem[];
}

export interface BackupInfo {
  path: string;
  kind: Header['kind'];
  backupId: string;
  parentId: string | null;
  parentHint: string;
  sourceName: string;
  filesystem: string;
  sourceSize: number;
  blockSize: number;
  blockCount: number;
  usedBlocks: number;
  zeroBlocks: number;
  changedBlocks: number | null;
  freedBlocks: number | null;
  storedBlocks: number;
  frames: number;
  compression: string;
  tailLength: number;
  tailStored: boolean;
  createdAt: string;
  fileLength: number;
  meta: Record<string, unknown>;
}

export interface Progress {
  bytesDone: number;
  bytesTotal: number;
}

function problemOf(error: unknown): VerifyProblem {
  if (DiskubeError.isInstance(error)) {
    return {
      structure: error.structure ?? 'backup',
      offset: error.offset,
      reason: error.reason,
      message: error.message,
    };
  }
  return { structure: 'backup', offset: undefined, reason: undefined, message: String(error) };
}

/**
 * A backup opened for random access. Opening checks the header, the footer and every section
 * (bitmaps, digest table, frame index) and their relations; frames are checked when read.
 */
export class BackupReader {
  /**
   * Blocks whose content is stored in this file's frames, in frame order; each has an entry in
   * the digest table, in the same order.
   */
  readonly stored: Bitmap;
  /**
   * Used non-zero blocks of this backup's state. For an incremental most of them are stored (and
   * have their digest) in an ancestor; `ChainState` gathers the digests of all of them.
   */
  readonly digested: Bitmap;
  private readonly storedRank: RankIndex;
  private cachedFrame: { index: number; raw: Uint8Array } | null = null;
  /** Frames and bytes read from the file since opening (instrumentation for restore). */
  readonly stats = { framesRead: 0, bytesRead: 0 };

  private constructor(
    readonly path: string,
    private readonly file: BlockSource,
    readonly header: Header,
    readonly footer: Footer,
    readonly used: Bitmap,
    readonly zero: Bitmap,
    readonly changed: Bitmap | null,
    readonly freed: Bitmap | null,
    /** The digest table: 16 bytes per stored block, in stored order. */
    readonly digests: Uint8Array,
    readonly frames: readonly FrameEntry[],
  ) {
    this.digested = used.clone().andNot(zero);
    this.stored = changed === null ? this.digested : this.digested.clone().and(changed);
    this.storedRank = new RankIndex(this.stored);
  }

  get backupId(): string {
    return toHex(this.header.backupId);
  }
  get parentId(): string | null {
    return this.header.kind === 'snapshot' ? null : toHex(this.header.parentId);
  }

  /** Open a backup held by any `BlockSource` (a file, or bytes in memory for tests). */
  static async fromSource(file: BlockSource, path = '<memory>'): Promise<BackupReader> {
    const read = async (offset: number, length: number, structure: string): Promise<Uint8Array> => {
      if (length > MAX_SECTION_BYTES) {
        throw new CorruptError(`${structure} of ${length} bytes is too large to load`, {
          structure,
          offset,
          reason: 'too-large',
        });
      }
      if (offset + length > file.size) {
        throw new CorruptError(`${structure} extends past the end of the file`, {
          structure,
          offset,
          reason: 'truncated',
        });
      }
      const dst = new Uint8Array(length);
      await file.read(offset, dst);
      return dst;
    };
    if (file.size < 16 + FOOTER_LENGTH) {
      throw new CorruptError(`file of ${file.size} bytes is too short to be a backup`, {
        structure: 'backup footer',
        offset: 0,
        reason: 'truncated',
      });
    }
    const headerLength = headerLengthFromPrefix(await read(0, 16, 'backup header'));
    const header = parseHeader(await read(0, headerLength, 'backup header'));
    const footerOffset = file.size - FOOTER_LENGTH;
    const footer = parseFooter(
      await read(footerOffset, FOOTER_LENGTH, 'backup footer'),
      footerOffset,
    );
    if (footer.fileLength !== file.size) {
      throw new CorruptError(`footer records ${footer.fileLength} bytes, file has ${file.size}`, {
        structure: 'backup footer',
        offset: footerOffset + 0x18,
        reason: 'truncated',
      });
    }
    if (!bytesEqual(footer.backupId, header.backupId)) {
      throw new CorruptError('footer and header belong to different backups', {
        structure: 'backup footer',
        offset: footerOffset + 0x08,
        reason: 'id-mismatch',
      });
    }
    if (footer.framesOffset !== headerLength) {
      throw new CorruptError('frames do not start right after the header', {
        structure: 'backup footer',
        offset: footerOffset + 0xa0,
        reason: 'bad-layout',
      });
    }
    // Sections follow the frames back to back in SECTION_TAGS order and end at the footer, so
    // every byte of the file is covered by some checksum.
    const incremental = header.kind === 'incremental';
    const required: Record<SectionTag, boolean> = {
      USED: true,
      CHNG: incremental,
      FREE: incremental,
      ZERO: true,
      DGST: true,
      FIDX: true,
      TAIL: header.tailStored,
    };
    let next = footer.framesOffset + footer.framesLength;
    const payloads = {} as Record<
      SectionTag,
      { encoding: number; payload: Uint8Array; base: number } | null
    >;
    for (const [k, tag] of SECTION_TAGS.entries()) {
      const loc = footer.sections[tag];
      if ((loc !== null) !== required[tag]) {
        throw new CorruptError(
          `${SECTION_NAMES[tag]} is ${loc === null ? 'missing' : 'unexpected'}`,
          {
            structure: 'backup footer',
            offset: footerOffset + 0x30 + 16 * k,
            reason: 'bad-section',
          },
        );
      }
      if (loc === null) continue;
      if (loc.offset !== next) {
        throw new CorruptError(`${SECTION_NAMES[tag]} is not where the layout puts it`, {
          structure: 'backup footer',
          offset: footerOffset + 0x30 + 16 * k,
          reason: 'bad-layout',
        });
      }
      next = loc.offset + loc.length;
      if (tag === 'TAIL') {
        payloads[tag] = null; // checked by readTail, which streams it
        if (loc.length !== header.tailLength + SECTION_HEADER_LENGTH + 4) {
          throw new CorruptError('tail section length disagrees with the header', {
            structure: 'tail section',
            offset: loc.offset,
            reason: 'length-mismatch',
          });
        }
        continue;
      }
      const parsed = parseSection(
        await read(loc.offset, loc.length, SECTION_NAMES[tag]),
        tag,
        loc.offset,
      );
      payloads[tag] = { ...parsed, base: loc.offset + SECTION_HEADER_LENGTH };
    }
    if (next !== footerOffset) {
      throw new CorruptError('sections do not end at the footer', {
        structure: 'backup footer',
        offset: footerOffset,
        reason: 'bad-layout',
      });
    }
    const n = header.blockCount;
    const bitmap = (tag: 'USED' | 'CHNG' | 'FREE' | 'ZERO'): Bitmap | null => {
      const p = payloads[tag];
      return p ? decodeBitmap(p.payload, p.encoding, n, SECTION_NAMES[tag], p.base) : null;
    };
    const used = bitmap('USED')!;
    const zero = bitmap('ZERO')!;
    const changed = bitmap('CHNG');
    const freed = bitmap('FREE');
    const relation = (ok: boolean, tag: SectionTag, what: string) => {
      if (!ok) {
        const p = payloads[tag]!;
        throw new CorruptError(what, {
          structure: SECTION_NAMES[tag],
          offset: p.base,
          reason: 'inconsistent',
        });
      }
    };
    relation(zero.clone().andNot(used).isEmpty(), 'ZERO', 'zero blocks must be used blocks');
    if (changed && freed) {
      relation(
        freed.clone().andNot(changed).isEmpty(),
        'FREE',
        'newly unused blocks must be changed blocks',
      );
      relation(freed.clone().and(used).isEmpty(), 'FREE', 'newly unused blocks must be unused');
    }
    const dg = payloads.DGST!;
    if (dg.encoding !== ENCODING_RAW)
      throw new CorruptError('digest table encoding must be 0', {
        structure: 'digest table',
        offset: dg.base - 12,
        reason: 'bad-encoding',
      });
    const storedCount =
      changed === null
        ? used.count() - zero.count()
        : used.clone().andNot(zero).and(changed).count();
    if (storedCount !== footer.storedBlockCount) {
      throw new CorruptError(
        `footer says ${footer.storedBlockCount} stored blocks, bitmaps say ${storedCount}`,
        { structure: 'backup footer', offset: footerOffset + 0x28, reason: 'inconsistent' },
      );
    }
    // One digest per stored block (SPEC.md §6.5, format 2): an incremental no longer repeats
    // the digests of the blocks it inherits.
    if (dg.payload.length !== storedCount * DIGEST_LENGTH) {
      throw new CorruptError(
        `digest table holds ${dg.payload.length} bytes for ${storedCount} stored blocks`,
        { structure: 'digest table', offset: dg.base, reason: 'length-mismatch' },
      );
    }
    const fi = payloads.FIDX!;
    if (fi.encoding !== ENCODING_RAW)
      throw new CorruptError('frame index encoding must be 0', {
        structure: 'frame index',
        offset: fi.base - 12,
        reason: 'bad-encoding',
      });
    const frames = parseFrameIndex(fi.payload, {
      frameCount: footer.frameCount,
      framesOffset: footer.framesOffset,
      framesLength: footer.framesLength,
      storedBlockCount: footer.storedBlockCount,
      blocksPerFrame: header.blocksPerFrame,
      blockSize: header.blockSize,
      base: fi.base,
    });
    return new BackupReader(
      path,
      file,
      header,
      footer,
      used,
      zero,
      changed,
      freed,
      dg.payload,
      frames,
    );
  }

  /** The decompressed, CRC-checked bytes of frame `k`. */
  async readFrame(k: number): Promise<Uint8Array> {
    if (this.cachedFrame?.index === k) return this.cachedFrame.raw;
    const e = this.frames[k];
    if (e === undefined) throw new InvalidArgumentError(`no frame ${k}`, { reason: 'bad-frame' });
    const structure = `frame ${k}`;
    const stored = new Uint8Array(e.storedLength);
    await this.file.read(e.offset, stored);
    this.stats.framesRead++;
    this.stats.bytesRead += stored.length;
    if (crc32c(stored) !== e.crc)
      throw new CorruptError(`frame ${k} checksum mismatch`, {
        structure,
        offset: e.offset,
        reason: 'checksum',
      });
    const raw = decompressFrame(
      stored,
      e.method,
      e.blockCount * this.header.blockSize,
      structure,
      e.offset,
    );
    this.cachedFrame = { index: k, raw };
    return raw;
  }

  /**
   * The digest of stored block `i` from this file's table, or null for blocks not stored here
   * (zero, unused, or for an incremental unchanged: see `ChainState` for the state's digests).
   */
  digestOf(i: number): Uint8Array | null {
    if (!this.stored.get(i)) return null;
    const at = this.storedRank.rank(i) * DIGEST_LENGTH;
    return this.digests.subarray(at, at + DIGEST_LENGTH);
  }

  /**
   * Block `i` as of this backup, when this file holds it: stored blocks from their frame (checked
   * against the digest), used zero blocks as zeros. Other blocks live in a parent (or are unused)
   * and are an `INVALID_ARGUMENT` error with reason `not-in-backup`.
   */
  async readBlock(i: number): Promise<Uint8Array> {
    const bs = this.header.blockSize;
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.header.blockCount) {
      throw new InvalidArgumentError(`block ${i} is outside the backup`, { reason: 'bad-block' });
    }
    if (this.zero.get(i) && (this.changed === null || this.changed.get(i)))
      return new Uint8Array(bs);
    if (!this.stored.get(i))
      throw new InvalidArgumentError(`block ${i} is not stored in ${this.path}`, {
        reason: 'not-in-backup',
      });
    const ordinal = this.storedRank.rank(i);
    const k = Math.floor(ordinal / this.header.blocksPerFrame);
    const raw = await this.readFrame(k);
    const at = (ordinal - k * this.header.blocksPerFrame) * bs;
    const block = raw.slice(at, at + bs);
    this.checkDigest(i, block);
    return block;
  }

  /** Throws `CorruptError` when `block` does not match the digest table entry of block `i`. */
  checkDigest(i: number, block: Uint8Array): void {
    const want = this.digestOf(i);
    if (want === null || !bytesEqual(blockDigest(block), want)) {
      throw new CorruptError(`block ${i} does not match its digest`, {
        structure: `block ${i}`,
        offset: i * this.header.blockSize,
        reason: 'digest',
      });
    }
  }

  /**
   * The stored blocks of each frame as runs of consecutive block indexes:
   * `[frame, [firstBlock, count, firstSlotInFrame][]]`, in file order.
   */
  *frameLayout(): Generator<[number, Array<[number, number, number]>]> {
    const runs = this.stored.runs();
    let pending: [number, number] | null = null;
    for (const [k, e] of this.frames.entries()) {
      const pieces: Array<[number, number, number]> = [];
      let slot = 0;
      while (slot < e.blockCount) {
        if (pending === null || pending[1] === 0) {
          const r = runs.next();
          if (r.done)
            throw new CorruptError('stored bitmap has fewer blocks than the frames', {
              structure: 'frame index',
              reason: 'inconsistent',
            });
          pending = [r.value[0], r.value[1]];
        }
        const take = Math.min(pending[1], e.blockCount - slot);
        pieces.push([pending[0], take, slot]);
        pending[0] += take;
        pending[1] -= take;
        slot += take;
      }
      yield [k, pieces];
    }
  }

  /**
   * Visit the stored blocks selected by `select` (default: all stored) in ascending order, as
   * runs of consecutive blocks: `onRun(firstBlock, bytes)` with `bytes` a whole number of blocks
   * (a view into the frame, valid until the callback's promise resolves). Frames holding no
   * selected block are not read; each other frame is read and decompressed once. With
   * `verifyDigests` (default) every block is checked against the digest table first.
   */
  async forEachStoredRun(
    onRun: (firstBlock: number, bytes: Uint8Array) => void | Promise<void>,
    options: { select?: Bitmap; verifyDigests?: boolean } = {},
  ): Promise<void> {
    const bs = this.header.blockSize;
    const verify = options.verifyDigests ?? true;
    const select = options.select ?? null;
    for (const [k, pieces] of this.frameLayout()) {
      const wanted: Array<[number, number, number]> = [];
      for (const [first, count, slot] of pieces) {
        if (select === null) wanted.push([first, count, slot]);
        else
          for (const [s, len] of select.runs(first, first + count))
            wanted.push([s, len, slot + (s - first)]);
      }
      if (wanted.length === 0) continue;
      const raw = await this.readFrame(k);
      for (const [first, count, slot] of wanted) {
        const bytes = raw.subarray(slot * bs, (slot + count) * bs);
        if (verify)
          for (let j = 0; j < count; j++)
            this.checkDigest(first + j, bytes.subarray(j * bs, (j + 1) * bs));
        await onRun(first, bytes);
      }
    }
  }

  /** The tail bytes (source bytes after the last block), checked; null when not stored. */
  async readTail(): Promise<Uint8Array | null> {
    const loc = this.footer.sections.TAIL;
    if (!this.header.tailStored || loc === null) return null;
    const bytes = new Uint8Array(loc.length);
    for (let at = 0; at < loc.length; at += TAIL_CHUNK) {
      await this.file.read(
        loc.offset + at,
        bytes.subarray(at, Math.min(loc.length, at + TAIL_CHUNK)),
      );
    }
    this.stats.bytesRead += bytes.length;
    return parseSection(bytes, 'TAIL', loc.offset).payload;
  }

  /**
   * Check every frame (CRC, decompression, each block against its digest) and the tail. Damage is
   * reported, not thrown; each problem names the frame or block.
   */
  async verify(options: { onProgress?: (p: Progress) => void } = {}): Promise<VerifyReport> {
    const problems: VerifyProblem[] = [];
    const bs = this.header.blockSize;
    let blocksChecked = 0;
    const bytesTotal = this.footer.framesLength;
    let bytesDone = 0;
    for (const [k, pieces] of this.frameLayout()) {
      const e = this.frames[k]!;
      try {
        this.cachedFrame = null;
        const raw = await this.readFrame(k);
        for (const [first, count, slot] of pieces) {
          for (let j = 0; j < count; j++) {
            try {
              this.checkDigest(first + j, raw.subarray((slot + j) * bs, (slot + j + 1) * bs));
            } catch (error) {
              problems.push({ ...problemOf(error), structure: `frame ${k}, block ${first + j}` });
            }
            blocksChecked++;
          }
        }
      } catch (error) {
        if (error instanceof IoError) throw error;
        problems.push(problemOf(error));
      }
      bytesDone += e.storedLength;
      options.onProgress?.({ bytesDone, bytesTotal });
    }
    try {
      await this.readTail();
    } catch (error) {
      if (error instanceof IoError) throw error;
      problems.push(problemOf(error));
    }
    this.cachedFrame = null;
    return {
      ok: problems.length === 0,
      framesChecked: this.frames.length,
      blocksChecked,
      problems,
    };
  }

  info(): BackupInfo {
    const h = this.header;
    return {
      path: this.path,
      kind: h.kind,
      backupId: this.backupId,
      parentId: this.parentId,
      parentHint: h.parentHint,
      sourceName: h.sourceName,
      filesystem: h.filesystem,
      sourceSize: h.sourceSize,
      blockSize: h.blockSize,
      blockCount: h.blockCount,
      usedBlocks: this.used.count(),
      zeroBlocks: this.zero.count(),
      changedBlocks: this.changed?.count() ?? null,
      freedBlocks: this.freed?.count() ?? null,
      storedBlocks: this.footer.storedBlockCount,
      frames: this.frames.length,
      compression: h.compression === 'zstd' ? `zstd level ${h.compressionLevel}` : 'none',
      tailLength: h.tailLength,
      tailStored: h.tailStored,
      createdAt: new Date(h.createdAt).toISOString(),
      fileLength: this.footer.fileLength,
      meta: h.meta,
    };
  }

  async close(): Promise<void> {
    this.cachedFrame = null;
    await this.file.close?.();
  }
}

/** Open a backup file for random access (checks header, footer and all sections). */
export async function openBackup(path: string): Promise<BackupReader> {
  const file = await openReadOnlySource(path);
  try {
    return await BackupReader.fromSource(file, path);
  } catch (error) {
    await file.close();
    throw error;
  }
}

/**
 * Open and fully verify a backup; damage found while opening is reported like frame damage, so
 * the caller gets one report either way. I/O errors are still thrown.
 */
export async function verifyBackup(
  path: string,
  options: { onProgress?: (p: Progress) => void } = {},
): Promise<VerifyReport> {
  let reader: BackupReader;
  try {
    reader = await openBackup(path);
  } catch (error) {
    if (DiskubeError.isInstance(error) && error.code === 'CORRUPT') {
      return { ok: false, framesChecked: 0, blocksChecked: 0, problems: [problemOf(error)] };
    }
    throw error;
  }
  try {
    return await reader.verify(options);
  } finally {
    await reader.close();
  }
}

/**
 * Read only the header of a file (for chain discovery): the parsed header, or null when the file
 * is not a backup or its header is damaged.
 */
export async function readBackupHeader(path: string): Promise<Header | null> {
  let file: (BlockSource & { close(): Promise<void> }) | undefined;
  try {
    file = await openReadOnlySource(path);
    if (file.size < 16) return null;
    const prefix = new Uint8Array(16);
    await file.read(0, prefix);
    const length = headerLengthFromPrefix(prefix);
    if (length > file.size) return null;
    const bytes = new Uint8Array(length);
    await file.read(0, bytes);
    return parseHeader(bytes);
  } catch {
    return null;
  } finally {
    await file?.close();
  }
}
