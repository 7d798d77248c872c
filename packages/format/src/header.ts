import { CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import { FieldWriter } from './bytes.js';
import { crc32c } from './crc32c.js';
import type { FormatReason } from './reasons.js';

// Sources: SPEC.md §3 "Header". All integers little-endian.

/** `DKBK` then CR LF SUB LF: catches text-mode transfers the way PNG's signature does. */
export const HEADER_MAGIC = Uint8Array.of(0x44, 0x4b, 0x42, 0x4b, 0x0d, 0x0a, 0x1a, 0x0a);
/**
 * 2: an incremental's digest table covers only its stored blocks (1 repeated the whole state's).
 * Version 1 files are refused as unsupported. 2.1 adds the incompat flag `NO_DIGEST_TABLE`, 2.2
 * the incompat flag `REPEATS`.
 */
export const FORMAT_MAJOR = 2;
export const FORMAT_MINOR = 2;
/**
 * Incompat flag bit 0 (2.1): the file has no DGST section. Block digests then come from the
 * writer's cache or from the frames (SPEC.md §6.5); a 2.0 reader refuses the file as unsupported
 * instead of calling it damaged.
 */
export const INCOMPAT_NO_DIGEST_TABLE = 1;
/**
 * Incompat flag bit 1 (2.2): the file has a REPT section (right after ZERO), and the blocks it
 * lists are held as repeats of blocks stored earlier in the same file (SPEC.md §6.8).
 */
export const INCOMPAT_REPEATS = 2;
const KNOWN_INCOMPAT = INCOMPAT_NO_DIGEST_TABLE | INCOMPAT_REPEATS;
/** Size of the fixed part of the header, before the strings. */
export const HEADER_FIXED_LENGTH = 0x80;
/** Longest string field, in bytes: denied beyond this to bound the header allocation. */
export const MAX_STRING_LENGTH = 65536;
export const MAX_HEADER_LENGTH = HEADER_FIXED_LENGTH + 4 * MAX_STRING_LENGTH + 4;
export const MIN_BLOCK_SIZE = 512;
/** Largest block size: a frame of one block must fit comfortably in memory. */
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024;
/** Largest frame (blocksPerFrame × blockSize) a reader accepts before allocating it. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Most blocks a backup may cover: 2^37 bits is the largest bitmap @diskube/bitmap holds. */
export const MAX_BLOCK_COUNT = 2 ** 37;

export type BackupKind = 'snapshot' | 'incremental';
export type CompressionType = 'none' | 'zstd';

export const KIND_CODES: Record<BackupKind, number> = { snapshot: 1, incremental: 2 };
export const COMPRESSION_CODES: Record<CompressionType, number> = { none: 0, zstd: 1 };
/** SHA-256 of the block, first 16 bytes. */
export const DIGEST_SHA256_128 = 1;
export const DIGEST_LENGTH = 16;
export const FLAG_TAIL_STORED = 1;

export interface Header {
  versionMajor: number;
  versionMinor: number;
  headerLength: number;
  kind: BackupKind;
  /** Random 128-bit identity of this backup. */
  backupId: Uint8Array;
  /** Identity of the parent (all zero for snapshots). */
  parentId: Uint8Array;
  sourceSize: number;
  blockCount: number;
  blockSize: number;
  blocksPerFrame: number;
  /** Milliseconds since the Unix epoch (UTC). */
  createdAt: number;
  compression: CompressionType;
  compressionLevel: number;
  digestAlgorithm: number;
  digestLength: number;
  /** Bytes of the source after `blockCount × blockSize`. */
  tailLength: number;
  /** True when the tail bytes are stored in the TAIL section. */
  tailStored: boolean;
  /** True when the file has a digest table (DGST); false when `NO_DIGEST_TABLE` is set. */
  digestTable: boolean;
  /** True when the file has a REPT section of repeated blocks (incompat flag `REPEATS`, 2.2). */
  repeats: boolean;
  sourceName: string;
  filesystem: string;
  /** File name of the parent when the backup was made (a hint; the id is authoritative). */
  parentHint: string;
  /** Free-form JSON object (driver facts). */
  meta: Record<string, unknown>;
}

const STRUCTURE = 'backup header';

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** Check the geometry fields shared by the encoder and the parser. Returns a reason or null. */
export function geometryProblem(h: {
  sourceSize: number;
  blockCount: number;
  blockSize: number;
  blocksPerFrame: number;
  tailLength: number;
}): string | null {
  if (!isPowerOfTwo(h.blockSize) || h.blockSize < MIN_BLOCK_SIZE || h.blockSize > MAX_BLOCK_SIZE) {
    return `block size ${h.blockSize} is not a power of two in [${MIN_BLOCK_SIZE}, ${MAX_BLOCK_SIZE}]`;
  }
  if (!Number.isSafeInteger(h.blockCount) || h.blockCount < 0 || h.blockCount > MAX_BLOCK_COUNT) {
    return `block count ${h.blockCount} is above 2^37`;
  }
  if (
    !Number.isSafeInteger(h.blocksPerFrame) ||
    h.blocksPerFrame < 1 ||
    h.blocksPerFrame * h.blockSize > MAX_FRAME_BYTES
  ) {
    return `blocks per frame ${h.blocksPerFrame} gives frames above ${MAX_FRAME_BYTES} bytes`;
  }
  const covered = h.blockCount * h.blockSize;
  if (!Number.isSafeInteger(covered) || !Number.isSafeInteger(covered + h.tailLength)) {
    return 'source size above 2^53';
  }
  if (h.tailLength < 0 || covered + h.tailLength !== h.sourceSize) {
    return `blockCount × blockSize + tailLength (${covered} + ${h.tailLength}) ≠ sourceSize ${h.sourceSize}`;
  }
  return null;
}

export function encodeHeader(
  h: Omit<Header, 'headerLength' | 'versionMajor' | 'versionMinor' | 'digestTable' | 'repeats'> & {
    /** Default true: the file has a digest table. */
    digestTable?: boolean;
    /** Default false: the file has no REPT section. */
    repeats?: boolean;
  },
): Uint8Array {
  const enc = new TextEncoder();
  const strings = [h.sourceName, h.filesystem, h.parentHint, JSON.stringify(h.meta)].map((s) =>
    enc.encode(s),
  );
  for (const s of strings) {
    if (s.length > MAX_STRING_LENGTH) {
      throw new UnsupportedError(
        `header string of ${s.length} bytes exceeds ${MAX_STRING_LENGTH}`,
        {
          structure: STRUCTURE,
          reason: 'string-too-long',
        },
      );
    }
  }
  const headerLength = HEADER_FIXED_LENGTH + strings.reduce((n, s) => n + s.length, 0) + 4;
  const w = new FieldWriter(headerLength);
  w.set(0x00, HEADER_MAGIC);
  w.u16(0x08, FORMAT_MAJOR);
  w.u16(0x0a, FORMAT_MINOR);
  w.u32(0x0c, headerLength);
  w.u32(
    0x10,
    ((h.digestTable ?? true) ? 0 : INCOMPAT_NO_DIGEST_TABLE) | (h.repeats ? INCOMPAT_REPEATS : 0),
  );
  w.u32(0x14, KIND_CODES[h.kind]);
  w.set(0x18, h.backupId);
  w.set(0x28, h.parentId);
  w.u64(0x38, h.sourceSize);
  w.u64(0x40, h.blockCount);
  w.u32(0x48, h.blockSize);
  w.u32(0x4c, h.blocksPerFrame);
  w.u64(0x50, h.createdAt);
  w.u16(0x58, COMPRESSION_CODES[h.compression]);
  w.i16(0x5a, h.compressionLevel);
  w.u16(0x5c, h.digestAlgorithm);
  w.u16(0x5e, h.digestLength);
  w.u64(0x60, h.tailLength);
  w.u32(0x68, h.tailStored ? FLAG_TAIL_STORED : 0);
  w.u32(0x6c, 0);
  let at = HEADER_FIXED_LENGTH;
  strings.forEach((s, k) => {
    w.u32(0x70 + 4 * k, s.length);
    w.set(at, s);
    at += s.length;
  });
  w.u32(at, crc32c(w.bytes.subarray(0, at)));
  return w.bytes;
}

/** How many bytes to read to parse the header, given its first 16 bytes. */
export function headerLengthFromPrefix(prefix: Uint8Array): number {
  const r = new FieldReader<FormatReason>(prefix, STRUCTURE);
  checkMagic(r);
  const headerLength = r.u32le(0x0c);
  if (headerLength < HEADER_FIXED_LENGTH + 4 || headerLength > MAX_HEADER_LENGTH) {
    throw r.corrupt(`header length ${headerLength} is out of range`, 0x0c, 'out-of-range');
  }
  return headerLength;
}

function checkMagic(r: FieldReader<FormatReason>): void {
  const magic = r.slice(0, 8);
  if (!magic.every((b, i) => b === HEADER_MAGIC[i])) {
    throw r.corrupt('not a diskube backup (bad header magic)', 0, 'bad-magic');
  }
}

/** Parse and validate the header. `bytes` must hold at least `headerLength` bytes. */
export function parseHeader(bytes: Uint8Array): Header {
  const r = new FieldReader<FormatReason>(bytes, STRUCTURE);
  const headerLength = headerLengthFromPrefix(bytes.subarray(0, 16));
  const body = r.slice(0, headerLength);
  const stored = r.u32le(headerLength - 4);
  if (crc32c(body.subarray(0, headerLength - 4)) !== stored) {
    throw r.corrupt('header checksum mismatch', headerLength - 4, 'checksum');
  }
  const versionMajor = r.u16le(0x08);
  const versionMinor = r.u16le(0x0a);
  if (versionMajor !== FORMAT_MAJOR) {
    throw new UnsupportedError(
      `backup format version ${versionMajor}.${versionMinor} is not supported (this reader reads version ${FORMAT_MAJOR}.x)`,
      {
        structure: STRUCTURE,
        offset: 0x08,
        reason: 'version',
      },
    );
  }
  const incompat = r.u32le(0x10);
  const unknownFlags = incompat & ~KNOWN_INCOMPAT;
  if (unknownFlags !== 0) {
    throw new UnsupportedError(
      `unknown incompatible feature flags 0x${unknownFlags.toString(16)}`,
      {
        structure: STRUCTURE,
        offset: 0x10,
        reason: 'incompat-flags',
      },
    );
  }
  const kindCode = r.u32le(0x14);
  const kind = (Object.keys(KIND_CODES) as BackupKind[]).find((k) => KIND_CODES[k] === kindCode);
  if (kind === undefined) throw r.corrupt(`unknown backup kind ${kindCode}`, 0x14, 'bad-kind');
  const compressionCode = r.u16le(0x58);
  const compression = (Object.keys(COMPRESSION_CODES) as CompressionType[]).find(
    (k) => COMPRESSION_CODES[k] === compressionCode,
  );
  if (compression === undefined) {
    throw new UnsupportedError(`unknown compression ${compressionCode}`, {
      structure: STRUCTURE,
      offset: 0x58,
      reason: 'compression',
    });
  }
  const digestAlgorithm = r.u16le(0x5c);
  const digestLength = r.u16le(0x5e);
  if (digestAlgorithm !== DIGEST_SHA256_128 || digestLength !== DIGEST_LENGTH) {
    throw new UnsupportedError(`unknown digest algorithm ${digestAlgorithm}/${digestLength}`, {
      structure: STRUCTURE,
      offset: 0x5c,
      reason: 'digest-algorithm',
    });
  }
  if (r.u32le(0x6c) !== 0) throw r.corrupt('header reserved field is not zero', 0x6c, 'reserved');
  const flags = r.u32le(0x68);
  if ((flags & ~FLAG_TAIL_STORED) !== 0)
    throw r.corrupt(`unknown flags 0x${flags.toString(16)}`, 0x68, 'bad-flags');
  const h = {
    sourceSize: r.u64le(0x38),
    blockCount: r.u64le(0x40),
    blockSize: r.u32le(0x48),
    blocksPerFrame: r.u32le(0x4c),
    tailLength: r.u64le(0x60),
  };
  const problem = geometryProblem(h);
  if (problem !== null) throw r.corrupt(problem, 0x38, 'bad-geometry');
  const parentId = r.slice(0x28, 16).slice();
  const isZeroId = parentId.every((b) => b === 0);
  if ((kind === 'snapshot') !== isZeroId) {
    throw r.corrupt('parent id must be zero exactly for snapshots', 0x28, 'bad-parent-id');
  }
  const tailStored = (flags & FLAG_TAIL_STORED) !== 0;
  if (tailStored && h.tailLength === 0)
    throw r.corrupt('tail stored but tail length is 0', 0x68, 'bad-flags');
  const dec = new TextDecoder('utf-8', { fatal: true });
  const strings: string[] = [];
  let at = HEADER_FIXED_LENGTH;
  for (let k = 0; k < 4; k++) {
    const length = r.u32le(0x70 + 4 * k);
    if (length > MAX_STRING_LENGTH || at + length > headerLength - 4) {
      throw r.corrupt(`header string ${k} overruns the header`, 0x70 + 4 * k, 'truncated');
    }
    try {
      strings.push(dec.decode(r.slice(at, length)));
    } catch (cause) {
      throw new CorruptError('header string is not UTF-8', {
        structure: STRUCTURE,
        offset: at,
        reason: 'bad-string',
        cause,
      });
    }
    at += length;
  }
  if (at !== headerLength - 4)
    throw r.corrupt('header length does not match its strings', 0x0c, 'length-mismatch');
  let meta: unknown;
  try {
    meta = JSON.parse(strings[3]!);
  } catch (cause) {
    throw new CorruptError('header meta is not JSON', {
      structure: STRUCTURE,
      offset: at,
      reason: 'bad-meta',
      cause,
    });
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw r.corrupt('header meta is not a JSON object', HEADER_FIXED_LENGTH, 'bad-meta');
  }
  return {
    versionMajor,
    versionMinor,
    headerLength,
    kind,
    backupId: r.slice(0x18, 16).slice(),
    parentId,
    ...h,
    createdAt: r.u64le(0x50),
    compression,
    compressionLevel: r.i16le(0x5a),
    digestAlgorithm,
    digestLength,
    tailStored,
    digestTable: (incompat & INCOMPAT_NO_DIGEST_TABLE) === 0,
    repeats: (incompat & INCOMPAT_REPEATS) !== 0,
    sourceName: strings[0]!,
    filesystem: strings[1]!,
    parentHint: strings[2]!,
    meta: meta as Record<string, unknown>,
  };
}
