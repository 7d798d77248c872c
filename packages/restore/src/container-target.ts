import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { createDiskWriter, type DiskWriterFormat } from '@diskube/container';
import { fileSink } from '@diskube/container/node';
import { InvalidArgumentError, IoError } from '@diskube/core';
import type { RestoreTarget } from './target.js';

export type ContainerTargetFormat = DiskWriterFormat;

export interface ContainerTargetOptions {
  format: ContainerTargetFormat;
  /** Replace an existing file. Default false. */
  overwrite?: boolean;
  /** qcow2 cluster size in bytes, a power of two from 512 to 2 MiB. Default 64 KiB. */
  clusterSize?: number;
  /**
   * qcow2 only: deflate-compress every data cluster that shrinks (as `qemu-img convert -c`).
   * The clusters are staged uncompressed in a second temporary file and compressed by
   * `finish`: slower, and the staging file needs the uncompressed space until then.
   */
  compress?: 'deflate';
}

/**
 * A qcow2 or VDI image file written by `@diskube/container`'s `createDiskWriter` as the restore
 * writes into it (any order, overwrites allowed; see the container package for the layout).
 *
 * Like `fileTarget`, the file is built under a temporary name, fsynced and renamed into place;
 * the writer writes the header last, so an interrupted restore never leaves a valid-looking
 * image. With compression a second temporary file stages the uncompressed clusters.
 */
export async function containerTarget(
  path: string,
  size: number,
  options: ContainerTargetOptions,
): Promise<RestoreTarget & { path: string; format: ContainerTargetFormat }> {
  const { format } = options;
  const existing = await stat(path).catch(() => null);
  if (existing !== null && !existing.isFile()) {
    throw new InvalidArgumentError(`${path} is not a regular file: a ${format} image is a file`, {
      reason: 'not-a-file',
    });
  }
  if (existing !== null && !options.overwrite)
    throw new InvalidArgumentError(`${path} already exists`, { reason: 'exists' });
  const files: Array<{ name: string; fh: FileHandle }> = [];
  const create = async () => {
    const name = join(
      dirname(path),
      `.${basename(path)}.partial-${randomBytes(6).toString('hex')}`,
    );
    try {
      const fh = await open(name, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
      files.push({ name, fh });
      return fh;
    } catch (cause) {
      throw new IoError(`cannot create ${name}`, { reason: 'open', cause });
    }
  };
  const cleanup = async () => {
    for (const { name, fh } of files) {
      await fh.close().catch(() => {});
      await unlink(name).catch(() => {});
    }
  };
  let writer: ReturnType<typeof createDiskWriter>;
  try {
    const output = await create();
    const staging = options.compress === undefined ? undefined : fileSink(await create());
    writer = createDiskWriter(format, fileSink(output), size, {
      clusterSize: options.clusterSize,
      compress: options.compress,
      staging,
      deflateRaw: (cluster) => deflateRawSync(cluster),
    });
  } catch (error) {
    await cleanup();
    throw error;
  }
  return {
    path,
    format,
    size,
    zeroed: true,
    write: (offset, bytes) => writer.write(offset, bytes),
    async finish() {
      try {
        await writer.finish();
        const [output, staging] = files;
        await output!.fh.sync();
        await output!.fh.close();
        await rename(output!.name, path);
        files.shift();
        if (staging) await cleanup();
      } catch (error) {
        await cleanup();
        throw error;
      }
    },
    async abort() {
      writer.abort();
      await cleanup();
    },
  };
}
