import { CorruptError } from '@diskube/core';
import { Compressor, Decompressor } from 'zstd-napi';
import { METHOD_RAW, METHOD_ZSTD } from './frame-index.js';

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

let decompressor: Decompressor | null = null;

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
  decompressor ??= new Decompressor();
  let raw: Uint8Array;
  try {
    const inflated = decompressor.decompress(stored);
    // A plain Uint8Array view: callers compare and slice it like any other block buffer.
    raw = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.length);
  } catch (cause) {
    throw new CorruptError('zstd frame does not decompress', {
      structure,
      offset,
      reason: 'decompress',
      cause,
    });
  }
  if (raw.length !== rawLength) {
    throw new CorruptError(`zstd frame inflates to ${raw.length} bytes, expected ${rawLength}`, {
      structure,
      offset,
      reason: 'decompress',
    });
  }
  return raw;
}
