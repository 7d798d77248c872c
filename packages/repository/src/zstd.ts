import { createRequire } from 'node:module';
import { Compressor } from 'zstd-napi';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import type { ChunkCodec } from './object.js';

// The native binding (a CommonJS module: its functions are not named ESM exports).
const binding = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;

// Sources: RFC 8878 (Zstandard). Each object is one complete zstd frame; a frame that is not
// smaller than the raw bytes is not used (the object is stored with method none).

/** The default per-object compression: zstd (level 3 unless given), one frame per object. */
export function zstdCodec(level = 3): ChunkCodec {
  let compressor: Compressor | null = null;
  let dctx: ZstdBinding.DCtx | null = null;
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
    decompress(stored, rawLength) {
      dctx ??= new binding.DCtx();
      return inflateExactly(dctx, stored, rawLength);
    },
  };
}

/**
 * `stored`, one zstd frame declaring `rawLength` bytes of content, inflated into a buffer of
 * exactly that size; anything else throws. zstd-napi's `Decompressor` allocates whatever the
 * frame declares (and grows without limit when it declares nothing), so a damaged size field
 * could ask for gigabytes before any check.
 */
function inflateExactly(dctx: ZstdBinding.DCtx, stored: Uint8Array, rawLength: number): Uint8Array {
  const declared = binding.getFrameContentSize(stored);
  if (declared === null) throw new Error(`the frame declares no content size, not ${rawLength}`);
  if (declared !== rawLength)
    throw new Error(`the frame declares ${declared} content bytes, not ${rawLength}`);
  if (binding.findFrameCompressedSize(stored) !== stored.length)
    throw new Error('bytes follow the frame');
  const raw = new Uint8Array(rawLength);
  const written = dctx.decompress(raw, stored);
  if (written !== rawLength) throw new Error(`the frame inflates to ${written} bytes`);
  return raw;
}
