import { FieldReader } from '@diskube/core';
import { FieldWriter } from './bytes.js';
import type { FormatReason } from './reasons.js';

// Sources: SPEC.md §5.6 "Frame index". One 24-byte entry per frame, in file order.

export const FRAME_ENTRY_LENGTH = 24;
export const METHOD_RAW = 0;
export const METHOD_ZSTD = 1;

export interface FrameEntry {
  /** Absolute file offset of the stored bytes. */
  offset: number;
  storedLength: number;
  /** Blocks in this frame (blocksPerFrame, except possibly the last). */
  blockCount: number;
  /** CRC32C of the stored (compressed) bytes. */
  crc: number;
  method: number;
}

export function encodeFrameIndex(entries: readonly FrameEntry[]): Uint8Array {
  const w = new FieldWriter(entries.length * FRAME_ENTRY_LENGTH);
  entries.forEach((e, k) => {
    const at = k * FRAME_ENTRY_LENGTH;
    w.u64(at, e.offset);
    w.u32(at + 8, e.storedLength);
    w.u32(at + 12, e.blockCount);
    w.u32(at + 16, e.crc);
    w.u8(at + 20, e.method);
  });
  return w.bytes;
}

export interface FrameIndexContext {
  frameCount: number;
  framesOffset: number;
  framesLength: number;
  storedBlockCount: number;
  blocksPerFrame: number;
  blockSize: number;
  /** File offset of the payload, for errors. */
  base: number;
}

/** The frame index's length against the footer (before its entries are read). */
export function checkFrameIndexLength(payloadLength: number, c: FrameIndexContext): void {
  const r = new FieldReader<FormatReason>(new Uint8Array(0), 'frame index', c.base);
  if (payloadLength !== c.frameCount * FRAME_ENTRY_LENGTH) {
    throw r.corrupt(
      `frame index holds ${payloadLength} bytes for ${c.frameCount} frames`,
      0,
      'length-mismatch',
    );
  }
  const expectedFrames = Math.ceil(c.storedBlockCount / c.blocksPerFrame);
  if (c.frameCount !== expectedFrames) {
    throw r.corrupt(
      `${c.frameCount} frames for ${c.storedBlockCount} stored blocks`,
      0,
      'bad-count',
    );
  }
}

/** After the last entry: the frames end where the footer says. */
export function checkFrameIndexEnd(next: number, c: FrameIndexContext): void {
  if (next !== c.framesOffset + c.framesLength) {
    const r = new FieldReader<FormatReason>(new Uint8Array(0), 'frame index', c.base);
    throw r.corrupt('frames do not fill the frame region', 0, 'length-mismatch');
  }
}

/**
 * Parse and check the entries in `chunk`, which starts with entry `firstIndex`; `expectedOffset`
 * is where that entry's frame must start. Returns the entries and where the next frame starts.
 */
export function parseFrameEntries(
  chunk: Uint8Array,
  c: FrameIndexContext,
  firstIndex: number,
  expectedOffset: number,
): { entries: FrameEntry[]; next: number } {
  const r = new FieldReader<FormatReason>(
    chunk,
    'frame index',
    c.base + firstIndex * FRAME_ENTRY_LENGTH,
  );
  const entries: FrameEntry[] = [];
  let next = expectedOffset;
  for (let j = 0; j < chunk.length / FRAME_ENTRY_LENGTH; j++) {
    const k = firstIndex + j;
    const at = j * FRAME_ENTRY_LENGTH;
    const e: FrameEntry = {
      offset: r.u64le(at),
      storedLength: r.u32le(at + 8),
      blockCount: r.u32le(at + 12),
      crc: r.u32le(at + 16),
      method: r.u8(at + 20),
    };
    if (r.u8(at + 21) !== 0 || r.u8(at + 22) !== 0 || r.u8(at + 23) !== 0) {
      throw r.corrupt(`frame ${k} entry has non-zero reserved bytes`, at + 21, 'reserved');
    }
    if (e.offset !== next)
      throw r.corrupt(`frame ${k} is not contiguous with frame ${k - 1}`, at, 'bad-offset');
    const wantBlocks =
      k < c.frameCount - 1 ? c.blocksPerFrame : c.storedBlockCount - k * c.blocksPerFrame;
    if (e.blockCount !== wantBlocks)
      throw r.corrupt(
        `frame ${k} holds ${e.blockCount} blocks, expected ${wantBlocks}`,
        at + 12,
        'bad-count',
      );
    const raw = e.blockCount * c.blockSize;
    if (e.method === METHOD_RAW) {
      if (e.storedLength !== raw)
        throw r.corrupt(`raw frame ${k} has length ${e.storedLength}`, at + 8, 'length-mismatch');
    } else if (e.method === METHOD_ZSTD) {
      if (e.storedLength === 0 || e.storedLength >= raw)
        throw r.corrupt(`zstd frame ${k} has length ${e.storedLength}`, at + 8, 'length-mismatch');
    } else {
      throw r.corrupt(`frame ${k} has unknown method ${e.method}`, at + 20, 'bad-method');
    }
    next += e.storedLength;
    entries.push(e);
  }
  return { entries, next };
}

/** One entry's bytes (for the writer's spilled index). */
export function encodeFrameEntry(e: FrameEntry): Uint8Array {
  return encodeFrameIndex([e]);
}
