import { createCipheriv, createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Generator as SpecGenerator } from './ast.js';

/**
 * A run of file bytes, described rather than stored so that large files cost nothing until
 * written. `start` is the position inside the generator's infinite stream.
 */
export type Segment =
  | { kind: 'random'; key: string; start: number; length: number }
  | { kind: 'text'; start: number; length: number }
  | { kind: 'zeros'; length: number }
  | { kind: 'bytes'; data: Uint8Array; length: number };

export const segmentsLength = (segs: readonly Segment[]): number =>
  segs.reduce((n, s) => n + s.length, 0);

/** Segments for `size` bytes of a spec generator. `key` names the random stream. */
export function generate(gen: SpecGenerator, size: number, key?: string): Segment[] {
  if (size === 0) return [];
  switch (gen.kind) {
    case 'random':
      return [{ kind: 'random', key: key ?? `seed:${gen.seed}`, start: 0, length: size }];
    case 'text':
      return [{ kind: 'text', start: 0, length: size }];
    case 'zeros':
      return [{ kind: 'zeros', length: size }];
    case 'literal': {
      const data = Buffer.from(gen.text, 'utf8');
      return [{ kind: 'bytes', data, length: data.length }];
    }
  }
}

function sliceSegment(s: Segment, from: number, to: number): Segment {
  const length = to - from;
  switch (s.kind) {
    case 'random':
      return { ...s, start: s.start + from, length };
    case 'text':
      return { ...s, start: s.start + from, length };
    case 'zeros':
      return { kind: 'zeros', length };
    case 'bytes':
      return { kind: 'bytes', data: s.data.subarray(from, to), length };
  }
}

/** Bytes [from, to) of a segment list. */
export function slice(segs: readonly Segment[], from: number, to: number): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (const s of segs) {
    const a = Math.max(from, at);
    const b = Math.min(to, at + s.length);
    if (a < b) out.push(sliceSegment(s, a - at, b - at));
    at += s.length;
  }
  return out;
}

/** Writes `data` over [offset, offset + length), growing the list with zeros when needed. */
export function overwrite(segs: readonly Segment[], offset: number, data: Segment[]): Segment[] {
  const len = segmentsLength(segs);
  const end = offset + segmentsLength(data);
  const head = slice(segs, 0, Math.min(offset, len));
  if (offset > len) head.push({ kind: 'zeros', length: offset - len });
  return [...head, ...data, ...slice(segs, end, Math.max(end, len))];
}

/** Cuts or extends (with zeros) to `size` bytes. */
export function resize(segs: readonly Segment[], size: number): Segment[] {
  const len = segmentsLength(segs);
  if (size <= len) return slice(segs, 0, size);
  return [...segs, { kind: 'zeros', length: size - len }];
}

/**
 * Deterministic random stream: AES-256-CTR over zeros, keyed by SHA-256 of the stream name.
 * CTR mode gives random access: byte p is in counter block p/16.
 */
function randomBytes(key: string, start: number, length: number): Buffer {
  const k = createHash('sha256').update(`mkimage random ${key}`).digest();
  const block = Math.floor(start / 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(block / 2 ** 32), 8);
  iv.writeUInt32BE(block % 2 ** 32, 12);
  const skip = start - block * 16;
  const c = createCipheriv('aes-256-ctr', k, iv);
  const out = c.update(Buffer.alloc(skip + length));
  return out.subarray(skip);
}

/** Readable text, fixed 64-byte lines so any byte is computable from its position. */
const LINE = 64;
function textBytes(start: number, length: number): Buffer {
  const first = Math.floor(start / LINE);
  const last = Math.floor((start + length - 1) / LINE);
  const parts: string[] = [];
  for (let i = first; i <= last; i++) {
    const head = `line ${String(i).padStart(8, '0')}: the quick brown fox jumps over`;
    parts.push(`${head.padEnd(LINE - 1, '.')}\n`);
  }
  const s = Buffer.from(parts.join(''), 'latin1');
  return s.subarray(start - first * LINE, start - first * LINE + length);
}

const CHUNK = 1 << 20;

/** Yields the bytes of a segment list in chunks of at most 1 MiB. */
export function* chunks(segs: readonly Segment[]): Generator<Uint8Array> {
  for (const s of segs) {
    for (let off = 0; off < s.length; off += CHUNK) {
      const n = Math.min(CHUNK, s.length - off);
      switch (s.kind) {
        case 'random':
          yield randomBytes(s.key, s.start + off, n);
          break;
        case 'text':
          yield textBytes(s.start + off, n);
          break;
        case 'zeros':
          yield new Uint8Array(n);
          break;
        case 'bytes':
          yield s.data.subarray(off, off + n);
          break;
      }
    }
  }
}

export function sha256(segs: readonly Segment[]): string {
  const h = createHash('sha256');
  for (const c of chunks(segs)) h.update(c);
  return h.digest('hex');
}

/** The manifest's record of planned files: path, size and SHA-256 of the content. */
export function fileRecords(files: ReadonlyArray<{ path: string; content: readonly Segment[] }>) {
  return files.map((f) => ({
    path: f.path,
    size: f.content.reduce((n, s) => n + s.length, 0),
    sha256: sha256(f.content),
  }));
}

/** Writes the segments at `position`; all-zero segments are skipped (the target reads zeros). */
export async function writeSegments(
  fh: FileHandle,
  segs: readonly Segment[],
  position: number,
  skipZeros = true,
): Promise<void> {
  let at = position;
  for (const s of segs) {
    if (s.kind === 'zeros' && skipZeros) {
      at += s.length;
      continue;
    }
    for (const c of chunks([s])) {
      await fh.write(c, 0, c.length, at);
      at += c.length;
    }
  }
}

export function toBuffer(segs: readonly Segment[]): Buffer {
  return Buffer.concat([...chunks(segs)]);
}
