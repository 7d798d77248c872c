import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  DiskubeError,
  InvalidArgumentError,
  IoError,
} from '@diskube/core';
import { BitmapSection } from './bitmap-codec.js';
import { bytesEqual, toHex } from './bytes.js';
import { decompressFrame } from './compress.js';
import { crc32c } from './crc32c.js';
import { blockDigest, blockDigestInto } from './digest.js';
import { FOOTER_LENGTH, type Footer, parseFooter } from './footer.js';
import {
  checkFrameIndexEnd,
  checkFrameIndexLength,
  FRAME_ENTRY_LENGTH,
  type FrameEntry,
  type FrameIndexContext,
  parseFrameEntries,
} from './frame-index.js';
import { DIGEST_LENGTH, type Header, headerLengthFromPrefix, parseHeader } from './header.js';
import { openReadOnlySource } from './io.js';
import { RepeatSection } from './repeats.js';
import {
  type AnySectionTag,
  ENCODING_RAW,
  parseSection,
  parseSectionTag,
  SECTION_HEADER_LENGTH,
  SECTION_NAMES,
  SECTION_TAGS,
  type SectionTag,
} from './section.js';

/** Tail bytes are read in pieces of this size. */
const TAIL_CHUNK = 1 << 20;
/** Bytes of a section read at once while checking its CRC. */
const CRC_CHUNK = 1 << 20;
/** Frame index entries read at once. */
const FIDX_CHUNK_ENTRIES = 4096;

/**
 * Blocks per window: bitmaps, digests and frames are handled one window of blocks at a time, so
 * memory does not grow with the disk (2^20 blocks: 128 KiB per bitmap window, at most 16 MiB of
 * digests). A multiple of 64 so that windows start on bitmap words.
 */
export const DEFAULT_WINDOW_BLOCKS = 1 << 20;

/** Checks a window size given by a caller (tests use small ones to cross many windows). */
export function checkWindowBlocks(n: number): number {
  if (!Number.isSafeInteger(n) || n < 64 || n % 64 !== 0)
    throw new InvalidArgumentError(`window of ${n} blocks: must be a positive multiple of 64`, {
      reason: 'bad-geometry',
    });
  return n;
}

/** One window of a backup's blocks: its bitmaps, relative to `start`. */
export interface BlockWindow {
  index: number;
  /** First block of the window. */
  start: number;
  /** Blocks in the window. */
  length: number;
  used: Bitmap;
  zero: Bitmap;
  changed: Bitmap | null;
  freed: Bitmap | null;
  /**
   * Blocks whose content this file holds: in its frames, or (format 2.2) as a repeat of a block
   * stored earlier in them (`repeated`). SPEC.md calls the frame blocks "stored"; readers hand out
   * both alike.
   */
  stored: Bitmap;
  /** The blocks of `stored` held as repeats (REPT, SPEC.md §6.8); empty without. */
  repeated: Bitmap;
  /** For each block of `repeated`, in block order, the ordinal (§5) of the block it repeats. */
  repeatTargets: Float64Array;
  /** Used non-zero blocks of the backup's state. */
  digested: Bitmap;
  /** Blocks of `stored` before the window (the rank of its first `stored`: `windowDigests`). */
  storedBefore: number;
  /** Frame blocks before the window: the ordinal (§5) of its first block in the frames. */
  framedBefore: number;
  /** Used non-zero blocks of the state before the window (the rank of its first `digested`). */
  digestedBefore: number;
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
  /** Whether the file holds a digest table (format 2.1 leaves it out by default). */
  digestTable: boolean;
  /** Blocks held as repeats of a block stored earlier in the file (format 2.2); not in `storedBlocks`. */
  repeatedBlocks: number;
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

/** Where a checked section's payload lies in the file. */
interface SectionPayload {
  encoding: number;
  /** File offset of the payload. */
  base: number;
  length: number;
}

/**
 * Check a section in place, streaming its bytes through the CRC: tag, length against the footer,
 * CRC32C. The same checks and errors as `parseSection`, without loading the payload.
 */
async function checkSection(
  file: BlockSource,
  tag: AnySectionTag,
  offset: number,
  length: number,
): Promise<SectionPayload> {
  const name = SECTION_NAMES[tag];
  if (length < SECTION_HEADER_LENGTH + 4 || offset + length > file.size) {
    throw new CorruptError(`${name} extends past the end of the file`, {
      structure: name,
      offset,
      reason: 'truncated',
    });
  }
  const head = new Uint8Array(SECTION_HEADER_LENGTH);
  await file.read(offset, head);
  // parseSection checks tag and length; give it the header and a zero-length payload view.
  const view = new DataView(head.buffer);
  const payloadLength = Number(view.getBigUint64(8, true));
  const tagOk = parseSectionTag(head, tag);
  if (!tagOk) {
    throw new CorruptError(`${name} has a bad tag`, {
      structure: name,
      offset,
      reason: 'bad-magic',
    });
  }
  if (payloadLength + SECTION_HEADER_LENGTH + 4 !== length) {
    throw new CorruptError(`${name} length disagrees with the footer`, {
      structure: name,
      offset: offset + 8,
      reason: 'length-mismatch',
    });
  }
  let crc = crc32c(head);
  const chunk = new Uint8Array(Math.min(CRC_CHUNK, Math.max(payloadLength, 4)));
  for (let at = 0; at < payloadLength; at += chunk.length) {
    const piece = chunk.subarray(0, Math.min(chunk.length, payloadLength - at));
    await file.read(offset + SECTION_HEADER_LENGTH + at, piece);
    crc = crc32c(piece, crc);
  }
  const stored = new Uint8Array(4);
  await file.read(offset + SECTION_HEADER_LENGTH + payloadLength, stored);
  if (new DataView(stored.buffer).getUint32(0, true) !== crc) {
    throw new CorruptError(`${name} checksum mismatch`, {
      structure: name,
      offset: offset + SECTION_HEADER_LENGTH + payloadLength,
      reason: 'checksum',
    });
  }
  return {
    encoding: view.getUint32(4, true),
    base: offset + SECTION_HEADER_LENGTH,
    length: payloadLength,
  };
}

/** Per-backup block counts, found while checking the bitmaps. */
interface Counts {
  used: number;
  zero: number;
  changed: number | null;
  freed: number | null;
  /** Blocks in the frames (§5 ordinals; the footer's `storedBlockCount`). */
  stored: number;
  /** Blocks held as repeats (REPT). */
  repeated: number;
  digested: number;
}

/**
 * A backup opened for random access. Opening checks the header, the footer and every section
 * (bitmaps, digest table, frame index: their CRCs and relations) by streaming them once; none of
 * them is kept in memory. Blocks are then visited one window at a time (`window`,
 * `forEachStoredRunIn`), frames are checked when read.
 */
export class BackupReader {
  private cachedFrame: { index: number; raw: Uint8Array } | null = null;
  private cachedWindow: BlockWindow | null = null;
  private cachedEntries: { first: number; entries: FrameEntry[] } | null = null;
  /** Frames and bytes read from the file since opening (instrumentation for restore). */
  readonly stats = { framesRead: 0, bytesRead: 0 };
  readonly windowCount: number;

  private constructor(
    readonly path: string,
    private readonly file: BlockSource,
    readonly header: Header,
    readonly footer: Footer,
    /** Blocks per window (`window`). */
    readonly windowBlocks: number,
    private readonly sections: {
      used: BitmapSection;
      zero: BitmapSection;
      changed: BitmapSection | null;
      freed: BitmapSection | null;
      /** Null when the file has no digest table (`NO_DIGEST_TABLE`). */
      digests: SectionPayload | null;
      index: SectionPayload;
      /** Null when the file has no REPT section. */
      repeats: RepeatSection | null;
    },
    /** `storedBefore[w]`: held blocks (frames and repeats) before window `w`; one more entry. */
    private readonly storedBefore: Float64Array,
    /** `framedBefore[w]`: frame blocks before window `w`; one more entry for the end. */
    private readonly framedBefore: Float64Array,
    /** `digestedBefore[w]`: used non-zero blocks of the state before window `w`. */
    private readonly digestedBefore: Float64Array,
    private readonly counts: Counts,
  ) {
    this.windowCount = storedBefore.length - 1;
  }

  get backupId(): string {
    return toHex(this.header.backupId);
  }
  get parentId(): string | null {
    return this.header.kind === 'snapshot' ? null : toHex(this.header.parentId);
  }
  /** Blocks stored in this file's frames. */
  get storedBlocks(): number {
    return this.counts.stored;
  }
  /** Blocks held as repeats of a block stored earlier in this file (format 2.2 REPT). */
  get repeatedBlocks(): number {
    return this.counts.repeated;
  }
  /** Used non-zero blocks of this backup's state (stored here or, for an incremental, earlier). */
  get digestedBlocks(): number {
    return this.counts.digested;
  }
  get changedBlocks(): number | null {
    return this.counts.changed;
  }
  /**
   * Whether the file holds a digest table. Without one (format 2.1 `NO_DIGEST_TABLE`), blocks are
   * checked by their frame's CRC and length only, and `windowDigests` hashes the stored blocks.
   */
  get hasDigestTable(): boolean {
    return this.sections.digests !== null;
  }

  /** Open a backup held by any `BlockSource` (a file, or bytes in memory for tests). */
  static async fromSource(
    file: BlockSource,
    path = '<memory>',
    options: { windowBlocks?: number } = {},
  ): Promise<BackupReader> {
    const windowBlocks = checkWindowBlocks(options.windowBlocks ?? DEFAULT_WINDOW_BLOCKS);
    const read = async (offset: number, length: number, structure: string): Promise<Uint8Array> => {
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
      DGST: header.digestTable,
      FIDX: true,
      TAIL: header.tailStored,
    };
    let next = footer.framesOffset + footer.framesLength;
    const payloads = {} as Record<SectionTag, SectionPayload | null>;
    let repeatPayload: SectionPayload | null = null;
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
      if (loc === null) {
        payloads[tag] = null;
        continue;
      }
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
      payloads[tag] = await checkSection(file, tag, loc.offset, loc.length);
      // REPT (2.2) has no entry in the footer's table: it follows ZERO, its framing gives its
      // length, and the next section must start after it.
      if (tag === 'ZERO' && header.repeats) {
        const head = await read(next, SECTION_HEADER_LENGTH, SECTION_NAMES.REPT);
        const p = new DataView(head.buffer).getBigUint64(8, true);
        if (p > BigInt(footerOffset - next - SECTION_HEADER_LENGTH - 4)) {
          throw new CorruptError(`${SECTION_NAMES.REPT} extends past the sections`, {
            structure: SECTION_NAMES.REPT,
            offset: next + 8,
            reason: 'truncated',
          });
        }
        const length = Number(p) + SECTION_HEADER_LENGTH + 4;
        repeatPayload = await checkSection(file, 'REPT', next, length);
        next += length;
      }
    }
    if (next !== footerOffset) {
      throw new CorruptError('sections do not end at the footer', {
        structure: 'backup footer',
        offset: footerOffset,
        reason: 'bad-layout',
      });
    }
    const n = header.blockCount;
    const section = (tag: 'USED' | 'CHNG' | 'FREE' | 'ZERO'): BitmapSection | null => {
      const p = payloads[tag];
      return p
        ? new BitmapSection(file, SECTION_NAMES[tag], p.base, p.length, p.encoding, n, windowBlocks)
        : null;
    };
    const used = section('USED')!;
    const changed = section('CHNG');
    const freed = section('FREE');
    const zero = section('ZERO')!;
    if (repeatPayload !== null && repeatPayload.encoding !== ENCODING_RAW)
      throw new CorruptError(`${SECTION_NAMES.REPT} encoding must be 0`, {
        structure: SECTION_NAMES.REPT,
        offset: repeatPayload.base - 12,
        reason: 'bad-encoding',
      });
    const repeats =
      repeatPayload === null
        ? null
        : new RepeatSection(file, repeatPayload.base, repeatPayload.length, n, windowBlocks);
    const relation = (ok: boolean, tag: SectionTag, what: string) => {
      if (!ok) {
        throw new CorruptError(what, {
          structure: SECTION_NAMES[tag],
          offset: payloads[tag]!.base,
          reason: 'inconsistent',
        });
      }
    };
    // One pass over the bitmaps, window by window: decode (which checks the encoding), relate,
    // count, and note where each window's stored blocks start.
    const windows = Math.ceil(n / windowBlocks);
    const storedBefore = new Float64Array(windows + 1);
    const framedBefore = new Float64Array(windows + 1);
    const digestedBefore = new Float64Array(windows + 1);
    const counts: Counts = {
      used: 0,
      zero: 0,
      changed: changed ? 0 : null,
      freed: freed ? 0 : null,
      stored: 0,
      repeated: 0,
      digested: 0,
    };
    let held = 0;
    for (let w = 0; w < windows; w++) {
      const u = await used.next();
      const c = changed ? await changed.next() : null;
      const f = freed ? await freed.next() : null;
      const z = await zero.next();
      relation(z.clone().andNot(u).isEmpty(), 'ZERO', 'zero blocks must be used blocks');
      if (c && f) {
        relation(
          f.clone().andNot(c).isEmpty(),
          'FREE',
          'newly unused blocks must be changed blocks',
        );
        relation(f.clone().and(u).isEmpty(), 'FREE', 'newly unused blocks must be unused');
        counts.changed! += c.count();
        counts.freed! += f.count();
      }
      const digested = u.clone().andNot(z);
      const stored = c === null ? digested : digested.clone().and(c);
      storedBefore[w] = held;
      framedBefore[w] = counts.stored;
      digestedBefore[w] = counts.digested;
      const repeated =
        repeats === null ? 0 : (await repeats.next(stored, counts.stored)).targets.length;
      counts.used += u.count();
      counts.zero += z.count();
      counts.digested += digested.count();
      const h = stored.count();
      held += h;
      counts.stored += h - repeated;
      counts.repeated += repeated;
    }
    repeats?.finish();
    storedBefore[windows] = held;
    framedBefore[windows] = counts.stored;
    digestedBefore[windows] = counts.digested;
    const dg = payloads.DGST;
    if (dg !== null && dg.encoding !== ENCODING_RAW)
      throw new CorruptError('digest table encoding must be 0', {
        structure: 'digest table',
        offset: dg.base - 12,
        reason: 'bad-encoding',
      });
    if (counts.stored !== footer.storedBlockCount) {
      throw new CorruptError(
        `footer says ${footer.storedBlockCount} stored blocks, bitmaps say ${counts.stored}`,
        { structure: 'backup footer', offset: footerOffset + 0x28, reason: 'inconsistent' },
      );
    }
    // One digest per stored block (SPEC.md §6.5, format 2): an incremental no longer repeats
    // the digests of the blocks it inherits.
    if (dg !== null && dg.length !== counts.stored * DIGEST_LENGTH) {
      throw new CorruptError(
        `digest table holds ${dg.length} bytes for ${counts.stored} stored blocks`,
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
    const context = frameIndexContext(header, footer, fi.base);
    checkFrameIndexLength(fi.length, context);
    let frameAt = footer.framesOffset;
    for (let k = 0; k < footer.frameCount; k += FIDX_CHUNK_ENTRIES) {
      const count = Math.min(FIDX_CHUNK_ENTRIES, footer.frameCount - k);
      const chunk = await read(
        fi.base + k * FRAME_ENTRY_LENGTH,
        count * FRAME_ENTRY_LENGTH,
        'frame index',
      );
      frameAt = parseFrameEntries(chunk, context, k, frameAt).next;
    }
    checkFrameIndexEnd(frameAt, context);
    return new BackupReader(
      path,
      file,
      header,
      footer,
      windowBlocks,
      { used, zero, changed, freed, digests: dg, index: fi, repeats },
      storedBefore,
      framedBefore,
      digestedBefore,
      counts,
    );
  }

  /** Window `w` of the blocks: blocks `[w × windowBlocks, …)`, with its bitmaps. */
  async window(w: number): Promise<BlockWindow> {
    if (this.cachedWindow?.index === w) return this.cachedWindow;
    if (!Number.isSafeInteger(w) || w < 0 || w >= this.windowCount)
      throw new InvalidArgumentError(`no window ${w}`, { reason: 'bad-block' });
    const s = this.sections;
    const used = await s.used.window(w);
    const zero = await s.zero.window(w);
    const changed = s.changed ? await s.changed.window(w) : null;
    const freed = s.freed ? await s.freed.window(w) : null;
    const digested = used.clone().andNot(zero);
    const stored = changed === null ? digested : digested.clone().and(changed);
    const repeats = s.repeats === null ? null : await s.repeats.window(w);
    const win: BlockWindow = {
      index: w,
      start: w * this.windowBlocks,
      length: used.length,
      used,
      zero,
      changed,
      freed,
      stored,
      repeated: repeats?.bits ?? new Bitmap(used.length),
      repeatTargets: repeats?.targets ?? new Float64Array(0),
      digested,
      storedBefore: this.storedBefore[w]!,
      framedBefore: this.framedBefore[w]!,
      digestedBefore: this.digestedBefore[w]!,
    };
    this.cachedWindow = win;
    return win;
  }

  /**
   * The digests of the window's stored blocks, one entry per stored block in block order: the
   * digest table's entries, or, in a file without a table, the SHA-256 of each block read from
   * its frame (CRC-checked). Without a table only the blocks of `select` (window-relative) are
   * read and hashed; the other entries stay zero.
   */
  async windowDigests(win: BlockWindow, select: Bitmap | null = null): Promise<Uint8Array> {
    const count = this.storedBefore[win.index + 1]! - win.storedBefore;
    const bytes = new Uint8Array(count * DIGEST_LENGTH);
    const table = this.sections.digests;
    if (table !== null) {
      // The table lists the frame blocks (§6.5); a repeated block takes its target's entry.
      const framed = this.framedBefore[win.index + 1]! - win.framedBefore;
      if (framed === count) {
        await this.file.read(table.base + win.framedBefore * DIGEST_LENGTH, bytes);
        return bytes;
      }
      const entries = new Uint8Array(framed * DIGEST_LENGTH);
      await this.file.read(table.base + win.framedBefore * DIGEST_LENGTH, entries);
      const bpf = this.header.blocksPerFrame;
      for (const [k, , n, slot, digestAt] of this.windowPieces(win)) {
        const from = k * bpf + slot - win.framedBefore;
        const to = digestAt * DIGEST_LENGTH;
        if (from >= 0 && from + n <= framed)
          bytes.set(entries.subarray(from * DIGEST_LENGTH, (from + n) * DIGEST_LENGTH), to);
        else
          await this.file.read(
            table.base + (from + win.framedBefore) * DIGEST_LENGTH,
            bytes.subarray(to, to + n * DIGEST_LENGTH),
          );
      }
      return bytes;
    }
    const bs = this.header.blockSize;
    for (const [k, , n, slot, digestAt] of this.windowPieces(win, select)) {
      const raw = await this.readFrame(k);
      for (let j = 0; j < n; j++)
        blockDigestInto(
          raw.subarray((slot + j) * bs, (slot + j + 1) * bs),
          bytes,
          (digestAt + j) * DIGEST_LENGTH,
        );
    }
    return bytes;
  }

  /** Entry `k` of the frame index (checked when the backup was opened). */
  async frameEntry(k: number): Promise<FrameEntry> {
    if (!Number.isSafeInteger(k) || k < 0 || k >= this.footer.frameCount)
      throw new InvalidArgumentError(`no frame ${k}`, { reason: 'bad-frame' });
    const cached = this.cachedEntries;
    if (cached !== null && k >= cached.first && k < cached.first + cached.entries.length)
      return cached.entries[k - cached.first]!;
    const first = k - (k % FIDX_CHUNK_ENTRIES);
    const count = Math.min(FIDX_CHUNK_ENTRIES, this.footer.frameCount - first);
    const chunk = new Uint8Array(count * FRAME_ENTRY_LENGTH);
    const base = this.sections.index.base;
    await this.file.read(base + first * FRAME_ENTRY_LENGTH, chunk);
    // Offsets were checked to be contiguous when opening; recheck this chunk's own fields.
    const firstOffset =
      new DataView(chunk.buffer).getUint32(0, true) +
      new DataView(chunk.buffer).getUint32(4, true) * 2 ** 32;
    const context = frameIndexContext(this.header, this.footer, base);
    const { entries } = parseFrameEntries(chunk, context, first, firstOffset);
    this.cachedEntries = { first, entries };
    return entries[k - first]!;
  }

  /** The decompressed, CRC-checked bytes of frame `k`. */
  async readFrame(k: number): Promise<Uint8Array> {
    if (this.cachedFrame?.index === k) return this.cachedFrame.raw;
    const e = await this.frameEntry(k);
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

  private async windowOf(i: number): Promise<BlockWindow> {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.header.blockCount) {
      throw new InvalidArgumentError(`block ${i} is outside the backup`, { reason: 'bad-block' });
    }
    return this.window(Math.floor(i / this.windowBlocks));
  }

  /**
   * The digest of stored block `i` from this file's table, or null for blocks not stored here
   * (zero, unused, or for an incremental unchanged: see `ChainState` for the state's digests).
   */
  async digestOf(i: number): Promise<Uint8Array | null> {
    const win = await this.windowOf(i);
    if (!win.stored.get(i - win.start)) return null;
    const table = this.sections.digests;
    if (table === null) return blockDigest(await this.readBlock(i));
    const ordinal = ordinalOf(win, i - win.start);
    const d = new Uint8Array(DIGEST_LENGTH);
    await this.file.read(table.base + ordinal * DIGEST_LENGTH, d);
    return d;
  }

  /**
   * Block `i` as of this backup, when this file holds it: stored blocks from their frame (checked
   * against the digest), used zero blocks as zeros. Other blocks live in a parent (or are unused)
   * and are an `INVALID_ARGUMENT` error with reason `not-in-backup`.
   */
  async readBlock(i: number): Promise<Uint8Array> {
    const bs = this.header.blockSize;
    const win = await this.windowOf(i);
    const j = i - win.start;
    if (win.zero.get(j) && (win.changed === null || win.changed.get(j))) return new Uint8Array(bs);
    if (!win.stored.get(j))
      throw new InvalidArgumentError(`block ${i} is not stored in ${this.path}`, {
        reason: 'not-in-backup',
      });
    const ordinal = ordinalOf(win, j);
    const k = Math.floor(ordinal / this.header.blocksPerFrame);
    const raw = await this.readFrame(k);
    const at = (ordinal - k * this.header.blocksPerFrame) * bs;
    const block = raw.slice(at, at + bs);
    if (this.sections.digests !== null) checkDigest(i, bs, block, await this.digestOf(i));
    return block;
  }

  /**
   * The held blocks of window `win` selected by `select` (window-relative; default all) as pieces
   * that lie in one frame each: `[frame, firstBlock, count, firstSlotInFrame, digestAt]`
   * (`digestAt`: the piece's first entry in `windowDigests`). Pieces come in frame order, so each
   * frame is read once: the frame blocks in file order, and each run of repeated blocks (format
   * 2.2) with the frame holding what it repeats. `framesOnly` leaves the repeats out.
   */
  *windowPieces(
    win: BlockWindow,
    select: Bitmap | null = null,
    framesOnly = false,
  ): Generator<[number, number, number, number, number]> {
    const bpf = this.header.blocksPerFrame;
    const repeats =
      framesOnly || win.repeatTargets.length === 0 ? [] : repeatPieces(win, select, bpf);
    let r = 0;
    const framed = win.repeated.isEmpty() ? win.stored : win.stored.clone().andNot(win.repeated);
    const pick = select === null ? framed : framed.clone().and(select);
    let rankBlock = 0;
    let rank = 0;
    let heldRank = 0;
    for (const [s, len] of pick.runs()) {
      rank += framed.countRange(rankBlock, s - rankBlock);
      heldRank += win.stored.countRange(rankBlock, s - rankBlock);
      rankBlock = s;
      let ordinal = win.framedBefore + rank;
      let digestAt = heldRank;
      let first = s;
      let left = len;
      while (left > 0) {
        const k = Math.floor(ordinal / bpf);
        while (r < repeats.length && repeats[r]![0] < k) yield repeats[r++]!;
        const slot = ordinal - k * bpf;
        const take = Math.min(left, bpf - slot);
        yield [k, win.start + first, take, slot, digestAt];
        ordinal += take;
        digestAt += take;
        first += take;
        left -= take;
      }
    }
    while (r < repeats.length) yield repeats[r++]!;
  }

  /**
   * Visit the stored blocks of window `win` selected by `select` (window-relative bits; default
   * all stored) in ascending order, as runs of consecutive blocks: `onRun(firstBlock, bytes)`
   * with `bytes` a whole number of blocks (a view into the frame, valid until the callback's
   * promise resolves). Frames holding no selected block are not read; with `verifyDigests`
   * (default) every block is checked against the digest table first, when the file has one.
   */
  async forEachStoredRunIn(
    win: BlockWindow,
    onRun: (firstBlock: number, bytes: Uint8Array) => void | Promise<void>,
    options: { select?: Bitmap; verifyDigests?: boolean } = {},
  ): Promise<void> {
    const bs = this.header.blockSize;
    const verify = (options.verifyDigests ?? true) && this.sections.digests !== null;
    let digests: Uint8Array | null = null;
    for (const [k, first, count, slot, digestAt] of this.windowPieces(win, options.select)) {
      const raw = await this.readFrame(k);
      const bytes = raw.subarray(slot * bs, (slot + count) * bs);
      if (verify) {
        digests ??= await this.windowDigests(win);
        for (let j = 0; j < count; j++) {
          const at = (digestAt + j) * DIGEST_LENGTH;
          checkDigest(
            first + j,
            bs,
            bytes.subarray(j * bs, (j + 1) * bs),
            digests.subarray(at, at + DIGEST_LENGTH),
          );
        }
      }
      await onRun(first, bytes);
    }
  }

  /**
   * Visit the stored blocks selected by `select` (a whole-disk bitmap; default all stored) in
   * ascending order, window by window (see `forEachStoredRunIn`).
   */
  async forEachStoredRun(
    onRun: (firstBlock: number, bytes: Uint8Array) => void | Promise<void>,
    options: { select?: Bitmap; verifyDigests?: boolean } = {},
  ): Promise<void> {
    for (let w = 0; w < this.windowCount; w++) {
      const win = await this.window(w);
      const select = options.select ? sliceBitmap(options.select, win.start, win.length) : null;
      await this.forEachStoredRunIn(win, onRun, {
        ...(select ? { select } : {}),
        ...(options.verifyDigests !== undefined ? { verifyDigests: options.verifyDigests } : {}),
      });
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
   * Check every frame (CRC, decompression, each block against its digest when the file has a
   * digest table) and the tail. Damage is reported, not thrown; each problem names the frame or
   * block.
   */
  async verify(options: { onProgress?: (p: Progress) => void } = {}): Promise<VerifyReport> {
    const problems: VerifyProblem[] = [];
    const bs = this.header.blockSize;
    let blocksChecked = 0;
    const bytesTotal = this.footer.framesLength;
    let bytesDone = 0;
    let frame = -1;
    let raw: Uint8Array | null = null;
    const leaveFrame = async () => {
      if (frame >= 0) bytesDone += (await this.frameEntry(frame)).storedLength;
      options.onProgress?.({ bytesDone, bytesTotal });
    };
    for (let w = 0; w < this.windowCount; w++) {
      const win = await this.window(w);
      const digests = this.sections.digests !== null ? await this.windowDigests(win) : null;
      // Repeated blocks are their targets' bytes, checked with the frames that hold them.
      for (const [k, first, count, slot, digestAt] of this.windowPieces(win, null, true)) {
        if (k !== frame) {
          await leaveFrame();
          frame = k;
          try {
            this.cachedFrame = null;
            raw = await this.readFrame(k);
          } catch (error) {
            if (error instanceof IoError) throw error;
            problems.push(problemOf(error));
            raw = null;
          }
        }
        if (raw === null) continue;
        if (digests === null) {
          blocksChecked += count;
          continue;
        }
        for (let j = 0; j < count; j++) {
          const at = (digestAt + j) * DIGEST_LENGTH;
          try {
            checkDigest(
              first + j,
              bs,
              raw.subarray((slot + j) * bs, (slot + j + 1) * bs),
              digests.subarray(at, at + DIGEST_LENGTH),
            );
          } catch (error) {
            problems.push({ ...problemOf(error), structure: `frame ${k}, block ${first + j}` });
          }
          blocksChecked++;
        }
      }
    }
    if (frame >= 0) await leaveFrame();
    try {
      await this.readTail();
    } catch (error) {
      if (error instanceof IoError) throw error;
      problems.push(problemOf(error));
    }
    this.cachedFrame = null;
    return {
      ok: problems.length === 0,
      framesChecked: this.footer.frameCount,
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
      usedBlocks: this.counts.used,
      zeroBlocks: this.counts.zero,
      changedBlocks: this.counts.changed,
      freedBlocks: this.counts.freed,
      storedBlocks: this.footer.storedBlockCount,
      frames: this.footer.frameCount,
      compression: h.compression === 'zstd' ? `zstd level ${h.compressionLevel}` : 'none',
      tailLength: h.tailLength,
      tailStored: h.tailStored,
      digestTable: this.hasDigestTable,
      repeatedBlocks: this.counts.repeated,
      createdAt: new Date(h.createdAt).toISOString(),
      fileLength: this.footer.fileLength,
      meta: h.meta,
    };
  }

  /**
   * One of the backup's bitmaps over the whole disk (`stored` and `digested` derived as in
   * SPEC.md §8), or null for CHNG/FREE of a snapshot. Costs one bit per block of the disk: for
   * tools and tests; restores and incrementals go window by window.
   */
  async bitmap(
    name: 'used' | 'zero' | 'changed' | 'freed' | 'stored' | 'repeated' | 'digested',
  ): Promise<Bitmap | null> {
    if ((name === 'changed' || name === 'freed') && this.sections[name] === null) return null;
    const whole = new Bitmap(this.header.blockCount);
    for (let w = 0; w < this.windowCount; w++) {
      const win = await this.window(w);
      const part = win[name]!;
      whole.setBytes(win.start, part.toBytes(), part.length);
    }
    return whole;
  }

  /** The whole digest table (16 bytes per stored block), null without one: for tools and tests. */
  async digestTable(): Promise<Uint8Array | null> {
    const d = this.sections.digests;
    if (d === null) return null;
    const bytes = new Uint8Array(d.length);
    await this.file.read(d.base, bytes);
    return bytes;
  }

  /** The whole frame index: for tools and tests. */
  async frameIndex(): Promise<FrameEntry[]> {
    const entries: FrameEntry[] = [];
    for (let k = 0; k < this.footer.frameCount; k++) entries.push(await this.frameEntry(k));
    return entries;
  }

  async close(): Promise<void> {
    this.cachedFrame = null;
    this.cachedWindow = null;
    await this.file.close?.();
  }
}

function frameIndexContext(header: Header, footer: Footer, base: number): FrameIndexContext {
  return {
    frameCount: footer.frameCount,
    framesOffset: footer.framesOffset,
    framesLength: footer.framesLength,
    storedBlockCount: footer.storedBlockCount,
    blocksPerFrame: header.blocksPerFrame,
    blockSize: header.blockSize,
    base,
  };
}

/** The ordinal (§5) of the frame block holding held block `j` of `win` (window-relative). */
function ordinalOf(win: BlockWindow, j: number): number {
  if (win.repeated.get(j)) return win.repeatTargets[win.repeated.countRange(0, j)]!;
  return win.framedBefore + win.stored.countRange(0, j) - win.repeated.countRange(0, j);
}

/**
 * The repeated blocks of `win` selected by `select` as pieces (see `windowPieces`), sorted by the
 * ordinal they repeat: consecutive blocks repeating consecutive blocks of one frame are one piece.
 */
function repeatPieces(
  win: BlockWindow,
  select: Bitmap | null,
  bpf: number,
): [number, number, number, number, number][] {
  const pieces: [number, number, number, number, number][] = [];
  let rank = 0;
  let heldBlock = 0;
  let heldRank = 0;
  let last: [number, number, number, number, number] | null = null;
  for (const [s, len] of win.repeated.runs()) {
    for (let j = s; j < s + len; j++, rank++) {
      if (select !== null && !select.get(j)) continue;
      heldRank += win.stored.countRange(heldBlock, j - heldBlock);
      heldBlock = j;
      const target = win.repeatTargets[rank]!;
      const k = Math.floor(target / bpf);
      const slot = target - k * bpf;
      if (
        last !== null &&
        last[0] === k &&
        last[1] + last[2] === win.start + j &&
        last[3] + last[2] === slot
      ) {
        last[2]++;
        continue;
      }
      last = [k, win.start + j, 1, slot, heldRank];
      pieces.push(last);
    }
  }
  return pieces.sort((a, b) => a[0] * bpf + a[3] - (b[0] * bpf + b[3]));
}

/** Throws `CorruptError` when `block` (block `i`) does not match `want`. */
function checkDigest(i: number, blockSize: number, block: Uint8Array, want: Uint8Array | null) {
  if (want === null || !bytesEqual(blockDigest(block), want)) {
    throw new CorruptError(`block ${i} does not match its digest`, {
      structure: `block ${i}`,
      offset: i * blockSize,
      reason: 'digest',
    });
  }
}

/** Bits `[start, start + length)` of `bitmap` as a bitmap of their own. */
export function sliceBitmap(bitmap: Bitmap, start: number, length: number): Bitmap {
  const part = new Bitmap(length);
  for (const [s, len] of bitmap.runs(start, start + length)) part.setRange(s - start, len);
  return part;
}

/** Open a backup file for random access (checks header, footer and all sections). */
export async function openBackup(
  path: string,
  options: { windowBlocks?: number } = {},
): Promise<BackupReader> {
  const file = await openReadOnlySource(path);
  try {
    return await BackupReader.fromSource(file, path, options);
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
