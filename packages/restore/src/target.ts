import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkRange, InvalidArgumentError, IoError } from '@diskube/core';

/** Where a restore writes the image. */
export interface RestoreTarget {
  readonly size: number;
  /**
   * True when bytes never written read back as zeros (a fresh sparse file, a new buffer), so
   * unused and all-zero blocks can be left as holes. False for a device or an existing file:
   * the restore must then be asked for `zeroUnused`.
   */
  readonly zeroed: boolean;
  /**
   * True when a block never written shows something other than zeros that is fine for unused
   * blocks but not for used ones (a qcow2 overlay's backing file): the restore then also writes
   * the used blocks that are all zeros, and leaves unused blocks alone. Reverse strategy only.
   */
  readonly needsZeroBlocks?: boolean;
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Make the result durable and visible. */
  finish(): Promise<void>;
  /** Give up: remove what a file target created. */
  abort(): Promise<void>;
}

/** A target in memory (tests, small images). */
export function memoryTarget(size: number): RestoreTarget & { bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  return {
    size,
    zeroed: true,
    bytes,
    async write(offset, data) {
      checkRange(size, offset, data.length, 'memory target');
      bytes.set(data, offset);
    },
    async finish() {},
    async abort() {},
  };
}

/**
 * A raw image file. A new or regular file is written under a temporary name, set to the full
 * size with `ftruncate` (unwritten blocks stay holes), fsynced and renamed into place, so a failed
 * restore never leaves a plausible-looking image. An existing block device is written in place
 * and is not `zeroed`.
 */
export async function fileTarget(
  path: string,
  size: number,
  options: { overwrite?: boolean } = {},
): Promise<RestoreTarget & { path: string }> {
  const existing = await stat(path).catch(() => null);
  if (existing?.isBlockDevice()) {
    if (existing.size !== 0 && existing.size < size) {
      throw new InvalidArgumentError(
        `${path} holds ${existing.size} bytes, the image needs ${size}`,
        { reason: 'target-size' },
      );
    }
    const fh = await open(path, constants.O_WRONLY);
    return handleTarget(
      path,
      fh,
      size,
      false,
      async () => {
        await fh.sync();
        await fh.close();
      },
      async () => {
        await fh.close().catch(() => {});
      },
    );
  }
  if (existing !== null && !options.overwrite)
    throw new InvalidArgumentError(`${path} already exists`, { reason: 'exists' });
  const temp = join(dirname(path), `.${basename(path)}.partial-${randomBytes(6).toString('hex')}`);
  let fh: FileHandle;
  try {
    fh = await open(temp, 'wx');
    await fh.truncate(size);
  } catch (cause) {
    throw new IoError(`cannot create ${temp}`, { reason: 'open', cause });
  }
  return handleTarget(
    path,
    fh,
    size,
    true,
    async () => {
      await fh.sync();
      await fh.close();
      await rename(temp, path);
    },
    async () => {
      await fh.close().catch(() => {});
      await unlink(temp).catch(() => {});
    },
  );
}

function handleTarget(
  path: string,
  fh: FileHandle,
  size: number,
  zeroed: boolean,
  finish: () => Promise<void>,
  abort: () => Promise<void>,
): RestoreTarget & { path: string } {
  return {
    path,
    size,
    zeroed,
    async write(offset, data) {
      checkRange(size, offset, data.length, path);
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    },
    finish,
    abort,
  };
}
