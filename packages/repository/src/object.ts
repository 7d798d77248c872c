import { CorruptError, FieldReader } from '@diskube/core';
import type { RepositoryReason } from './reasons.js';

// Sources: SPEC.md, "Objects". Every object the repository writes except the locks is one
// envelope: a 24-byte header, then the stored bytes. Its key ends in the SHA-256 (hex) of the
// raw content, and a reader checks that digest after decompressing, so every bit is verified.

export const OBJECT_MAGIC = 0x4f524b44; // "DKRO" read little-endian
export const HEADER_SIZE = 24;

/** What an object holds (header byte 4). */
export const ObjectType = Object.freeze({
  config: 1,
  chunk: 2,
  index: 3,
  usedMap: 4,
  manifest: 5,
  patch: 6,
} as const);
export type ObjectTypeName = keyof typeof ObjectType;

export const METHOD_NONE = 0;
export const METHOD_ZSTD = 1;

/** Per-chunk compression, kept behind this interface so the format code imports nothing native. */
export interface ChunkCodec {
  /** The compressed bytes, or `null` when they would not be smaller. */
  compress(raw: Uint8Array): Uint8Array | null;
  /** Inflate `stored` (zstd) to exactly `rawLength` bytes, or throw. */
  decompress(stored: Uint8Array, rawLength: number): Uint8Array;
}

/** Objects larger than this (raw or stored) are refused: no read allocates without bound. */
export const MAX_OBJECT_SIZE = 64 * 1024 * 1024;

/** SHA-256 of `bytes` as 64 lowercase hex digits (WebCrypto: Node ≥ 20 and browsers). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  return toHex(digest);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += HEX[b];
  return out;
}

export function fromHex(hex: string, into: Uint8Array, at: number): void {
  for (let i = 0; i < 32; i++) into[at + i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
}

const ID = /^[0-9a-f]{64}$/;
/** True for a 64-hex-digit object id. */
export function isObjectId(id: string): boolean {
  return ID.test(id);
}

/** Wrap `raw` in an envelope, compressed when that makes it smaller. */
export function encodeObject(type: number, raw: Uint8Array, codec: ChunkCodec | null): Uint8Array {
  const packed = codec?.compress(raw) ?? null;
  const stored = packed ?? raw;
  const out = new Uint8Array(HEADER_SIZE + stored.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, OBJECT_MAGIC, true);
  out[4] = type;
  out[5] = packed ? METHOD_ZSTD : METHOD_NONE;
  view.setBigUint64(8, BigInt(raw.length), true);
  view.setBigUint64(16, BigInt(stored.length), true);
  out.set(stored, HEADER_SIZE);
  return out;
}

/**
 * Open an envelope read from `key` and check it: magic, type, method, lengths, then (after
 * decompressing) that the SHA-256 of the content is `id`. Any mismatch is a `CorruptError` naming
 * the key; a digest mismatch has reason `chunk-digest` for chunks, `object-digest` otherwise.
 */
export async function decodeObject(
  bytes: Uint8Array,
  type: number,
  key: string,
  id: string | null,
  codec: ChunkCodec,
): Promise<Uint8Array> {
  const structure = `repository object ${key}`;
  const r = new FieldReader<RepositoryReason>(bytes, structure, 0).need(HEADER_SIZE);
  const corrupt = (message: string, where: { reason: RepositoryReason; at?: number }): never => {
    throw new CorruptError(`${key}: ${message}`, {
      structure,
      offset: where.at ?? 0,
      reason: where.reason,
    });
  };
  if (r.u32le(0) !== OBJECT_MAGIC) corrupt('bad magic', { reason: 'bad-magic' });
  if (r.u8(4) !== type) corrupt(`type ${r.u8(4)}, expected ${type}`, { reason: 'bad-type', at: 4 });
  const method = r.u8(5);
  if (method !== METHOD_NONE && method !== METHOD_ZSTD)
    corrupt(`method ${method}`, { reason: 'bad-method', at: 5 });
  const rawLength = r.u64le(8);
  const storedLength = r.u64le(16);
  if (rawLength > MAX_OBJECT_SIZE || storedLength > MAX_OBJECT_SIZE)
    corrupt(`length ${rawLength}/${storedLength} above ${MAX_OBJECT_SIZE}`, {
      reason: 'too-large',
      at: 8,
    });
  if (storedLength !== bytes.length - HEADER_SIZE)
    corrupt(`stored length ${storedLength}, object holds ${bytes.length - HEADER_SIZE}`, {
      reason: 'bad-length',
      at: 16,
    });
  if (method === METHOD_NONE && rawLength !== storedLength)
    corrupt('raw and stored lengths differ without compression', { reason: 'bad-length', at: 8 });
  const stored = bytes.subarray(HEADER_SIZE);
  let raw: Uint8Array;
  if (method === METHOD_NONE) raw = stored;
  else {
    try {
      raw = codec.decompress(stored, rawLength);
    } catch (cause) {
      throw new CorruptError(`${key}: does not decompress`, {
        structure,
        offset: HEADER_SIZE,
        reason: 'decompress',
        cause,
      });
    }
    if (raw.length !== rawLength)
      corrupt(`inflates to ${raw.length} bytes, not ${rawLength}`, { reason: 'decompress', at: 8 });
  }
  if (id !== null) {
    const digest = await sha256Hex(raw);
    if (digest !== id) {
      const where =
        type === ObjectType.chunk
          ? ({ reason: 'chunk-digest', at: HEADER_SIZE } as const)
          : ({ reason: 'object-digest', at: HEADER_SIZE } as const);
      corrupt(`content digest ${digest} is not the object's id`, where);
    }
  }
  return raw;
}
