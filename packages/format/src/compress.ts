import { createRequire } from 'node:module';
import { CorruptError } from '@diskube/core';
import { Compressor } from 'zstd-napi';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { METHOD_RAW, METHOD_ZSTD } from './frame-index.js';

// The native binding (a CommonJS module: its functions are not named ESM exports).
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;

// Sources: RFC 8878 (Zstandard). Each zstd frame is a complete Zstandard frame with its content
// size set; a frame whose compressed form is not smaller than the raw bytes is stored raw.

export interface CompressOptions {
  type: 'none' | 'zstd';
  /** zstd level (−7 … 22); default 3. */
  level?: number;
}

export const DEFAULT_ZSTD_LEVEL = 3;

export class FrameCompressor {
  private readonly zstd: Compressor | null;

  constructor(options: CompressOptions) {
    if (options.type === 'zstd') {
      this.zstd = new Compressor();
      this.zstd.setParameters({
        compressionLevel: options.level ?? DEFAULT_ZSTD_LEVEL,
        checksumFlag: false,
      });
    } else {
      this.zstd = null;
    }
  }

  compress(raw: Uint8Array): { method: number; stored: Uint8Array } {
    if (this.zstd !== null) {
      const packed = this.zstd.compress(raw);
      if (packed.length < raw.length) return { method: METHOD_ZSTD, stored: packed };
    }
    return { method: METHOD_RAW, stored: raw };
  }
}

let dctx: ZstdBinding.DCtx | null = null;

/** Inflate one stored frame to exactly `rawLength` bytes or throw `CorruptError`. */
export function decompressFrame(
  stored: Uint8Array,
  method: number,
  rawLength: number,
  structure: string,
  offset: number,
): Uint8Array {
  if (method === METHOD_RAW) return stored;
  if (method !== METHOD_ZSTD)
    throw new CorruptError(`unknown frame method ${method}`, {
      structure,
      offset,
      reason: 'bad-method',
    });
  const fail = (message: string, cause?: unknown) =>
    new CorruptError(message, { structure, offset, reason: 'decompress', cause });
  // The frame must declare exactly `rawLength` bytes and be the only one: it is inflated into a
  // buffer of that size, never more. (zstd-napi's Decompressor allocates whatever the frame
  // declares, so a damaged size field could ask for gigabytes before any check.)
  let declared: number | null;
  try {
    declared = zstd.getFrameContentSize(stored);
  } catch (cause) {
    throw fail('zstd frame header does not parse', cause);
  }
  if (declared === null) throw fail(`zstd frame declares no content size, expected ${rawLength}`);
  if (declared !== rawLength)
    throw fail(`zstd frame declares ${declared} content bytes, expected ${rawLength}`);
  dctx ??= new zstd.DCtx();
  const raw = new Uint8Array(rawLength);
  let written: number;
  try {
    if (zstd.findFrameCompressedSize(stored) !== stored.length) throw new Error('bytes follow');
    written = dctx.decompress(raw, stored);
  } catch (cause) {
    throw fail('zstd frame does not decompress', cause);
  }
  if (written !== rawLength)
    throw fail(`zstd frame inflates to ${written} bytes, expected ${rawLength}`);
  return raw;
}
