import type { FileHandle } from 'node:fs/promises';
import type { StagingSink } from './disk-writer.js';

/**
 * A `DiskSink` (and `StagingSink`) over an open Node file handle: positioned writes, reads that
 * return zeros past the end, `ftruncate`. Opening, syncing, closing and renaming the file stay
 * with the caller.
 */
export function fileSink(handle: FileHandle): StagingSink {
  return {
    async write(offset, bytes) {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(
          bytes,
          done,
          bytes.length - done,
          offset + done,
        );
        done += bytesWritten;
      }
    },
    async read(offset, dst) {
      let done = 0;
      while (done < dst.length) {
        const { bytesRead } = await handle.read(dst, done, dst.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      dst.fill(0, done);
    },
    truncate: (length) => handle.truncate(length),
  };
}
