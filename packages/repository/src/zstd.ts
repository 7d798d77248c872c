import { Compressor, Decompressor } from 'zstd-napi';
import type { ChunkCodec } from './object.js';

// Sources: RFC 8878 (Zstandard). Each object is one complete zstd frame; a frame that is not
// smaller than the raw bytes is not used (the object is stored with method none).

/** The default per-object compression: zstd (level 3 unless given), one frame per object. */
export function zstdCodec(level = 3): ChunkCodec {
  let compressor: Compressor | null = null;
  let decompressor: Decompressor | null = null;
  return {
    compress(raw) {
      if (compressor === null) {
        compressor = new Compressor();
        compressor.setParameters({ compressionLevel: level, checksumFlag: false });
      }
      const packed = compressor.compress(raw);
      return packed.length < raw.length
        ? new Uint8Array(packed.buffer, packed.byteOffset, packed.length)
        : null;
    },
    decompress(stored) {
      decompressor ??= new Decompressor();
      const raw = decompressor.decompress(stored);
      return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
    },
  };
}
