import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { InvalidArgumentError, IoError } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';

// Every file read and write of the format package: a random-access source over a backup file (or
// a state digest file) and an append-only sink that writes to a temporary name and renames on
// success. state-cache.ts only makes its folders and deletes or touches its files besides.

/** A read-only `BlockSource` over a backup file: core's positioned-read file source. */
export const openReadOnlySource = openFileSource;

/** Where a backup is written: appends only, knows its position, commits or aborts. */
export interface Sink {
  readonly position: number;
  write(bytes: Uint8Array): Promise<void>;
  /** Flush, make durable, publish. */
  finish(): Promise<void>;
  /** Discard what was written (best effort). */
  abort(error: unknown): Promise<void>;
}

const FLUSH_BYTES = 1 << 20;
/**
 * Pieces at least this large (compressed frames, typically) are written at once instead of being
 * copied into the pending batch: copying every frame cost ~1 byte of memcpy per byte stored.
 */
const DIRECT_BYTES = 64 << 10;

/**
 * Writes to `<dir>/.<name>.partial-<random>`, then fsyncs, renames to `path` and fsyncs the
 * directory, so a crash never leaves a file with the final name that is not complete (and a
 * partial file has no footer, so it is also recognisably incomplete).
 */
export async function fileSink(
  path: string,
  options: { overwrite?: boolean } = {},
): Promise<Sink & { path: string }> {
  if (!options.overwrite) {
    const exists = await stat(path).then(
      () => true,
      () => false,
    );
    if (exists) throw new InvalidArgumentError(`${path} already exists`, { reason: 'exists' });
  }
  const temp = join(dirname(path), `.${basename(path)}.partial-${randomBytes(6).toString('hex')}`);
  let fh: FileHandle;
  try {
    fh = await open(temp, 'wx');
  } catch (cause) {
    throw new IoError(`cannot create ${temp}`, { reason: 'open', cause });
  }
  let position = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const chunks = pending;
    pending = [];
    pendingBytes = 0;
    await fh.writev(chunks);
  };
  return {
    path,
    get position() {
      return position;
    },
    async write(bytes) {
      // Callers may reuse their buffers once write resolves: keep a copy of small pieces only
      // while they are pending, large ones are written at once.
      position += bytes.length;
      if (bytes.length >= DIRECT_BYTES) {
        await flush();
        let done = 0;
        while (done < bytes.length) {
          const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
          done += bytesWritten;
        }
        return;
      }
      pending.push(bytes.slice());
      pendingBytes += bytes.length;
      if (pendingBytes >= FLUSH_BYTES) await flush();
    },
    async finish() {
      await flush();
      await fh.sync();
      await fh.close();
      await rename(temp, path);
      try {
        const dir = await open(dirname(path), constants.O_RDONLY);
        await dir.sync().finally(() => dir.close());
      } catch {
        // Some platforms cannot fsync a directory; the rename is still atomic.
      }
    },
    async abort() {
      await fh.close().catch(() => {});
      await unlink(temp).catch(() => {});
    },
  };
}

/** A sink over a stream (a pipe, stdout). The index comes last, so no seeking is needed. */
export function streamSink(stream: Writable): Sink {
  let position = 0;
  return {
    get position() {
      return position;
    },
    async write(bytes) {
      position += bytes.length;
      // The stream may hold on to the chunk: give it a copy.
      if (!stream.write(Buffer.from(bytes))) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            stream.off('error', onError);
            resolve();
          };
          const onError = (err: Error) => {
            stream.off('drain', onDrain);
            reject(new IoError('output stream failed', { reason: 'write', cause: err }));
          };
          stream.once('drain', onDrain);
          stream.once('error', onError);
        });
      }
    },
    async finish() {
      await new Promise<void>((resolve, reject) => {
        stream.once('error', (err) =>
          reject(new IoError('output stream failed', { reason: 'write', cause: err })),
        );
        stream.end(() => resolve());
      });
    },
    async abort(error) {
      stream.destroy(error instanceof Error ? error : new Error(String(error)));
    },
  };
}
