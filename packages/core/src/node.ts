import { open } from 'node:fs/promises';
import { IoError } from './errors.js';
import { type BlockSource, checkRange } from './source.js';

/** A `BlockSource` over a file (or block device) that must be closed after use. */
export interface FileSource extends BlockSource {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Open a file for positioned reads. Nothing is buffered: each `read` is one or more `pread`
 * calls on the handle, looping over short reads until `dst` is full. A read past the end of the
 * file is an `IoError` with reason `out-of-range`; the file shrinking under us is `short-read`.
 */
export async function openFileSource(path: string): Promise<FileSource> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    throw new IoError(`cannot open ${path}: ${(cause as Error).message}`, {
      reason: 'open',
      cause,
    });
  }
  const stat = await handle.stat();
  let size = stat.size;
  if (stat.isBlockDevice()) {
    // stat reports 0 for block devices; the end of the device is where a seek lands.
    const probe = Buffer.alloc(1);
    let lo = 0;
    let hi = 2 ** 50;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      const { bytesRead } = await handle.read(probe, 0, 1, mid - 1);
      if (bytesRead === 1) lo = mid;
      else hi = mid - 1;
    }
    size = lo;
  }
  let closed = false;
  return {
    path,
    size,
    async read(offset, dst) {
      checkRange(size, offset, dst.length, path);
      if (closed) throw new IoError(`read from closed file ${path}`, { offset, reason: 'closed' });
      let done = 0;
      while (done < dst.length) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(dst, done, dst.length - done, offset + done));
        } catch (cause) {
          throw new IoError(`read of ${path} failed: ${(cause as Error).message}`, {
            offset: offset + done,
            reason: 'read-failed',
            cause,
          });
        }
        if (bytesRead === 0) {
          throw new IoError(`${path} ended ${dst.length - done} bytes early`, {
            offset: offset + done,
            reason: 'short-read',
          });
        }
        done += bytesRead;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
