import { IoError } from './errors.js';
import { type BlockSource, checkRange } from './source.js';

/**
 * The part of the web `Blob` (and `File`) interface a source needs. Node ≥ 20 has `Blob` too, so
 * this works there, but its purpose is a browser: a dropped disk image of hundreds of GiB is read
 * lazily, one `slice` per read, and never loaded whole.
 */
export interface BlobLike {
  readonly size: number;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/** A `BlockSource` over a `Blob` or `File`: each read is one `blob.slice(…).arrayBuffer()`. */
export function blobSource(blob: BlobLike): BlockSource {
  const size = blob.size;
  return {
    size,
    async read(offset, dst) {
      checkRange(size, offset, dst.length, 'blob');
      if (dst.length === 0) return;
      let bytes: ArrayBuffer;
      try {
        bytes = await blob.slice(offset, offset + dst.length).arrayBuffer();
      } catch (cause) {
        throw new IoError(`cannot read ${dst.length} bytes at ${offset} from the blob`, {
          offset,
          reason: 'read-failed',
          cause,
        });
      }
      // A File changed on disk after it was picked reads short in some browsers.
      if (bytes.byteLength !== dst.length) {
        throw new IoError(`blob returned ${bytes.byteLength} of ${dst.length} bytes at ${offset}`, {
          offset,
          reason: 'short-read',
        });
      }
      dst.set(new Uint8Array(bytes));
    },
  };
}
