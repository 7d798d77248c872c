import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { createDiskWriter, type DiskWriter, type DiskWriterFormat } from '@diskube/container';
import { fileSink } from '@diskube/container/node';
import { type BlockSource, InvalidArgumentError, IoError } from '@diskube/core';
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
  /**
   * qcow2 only: write an overlay on this backing image instead of a whole disk. `file` is stored
   * in the header as given (relative to the output's directory unless absolute), with `format`;
   * `disk` is the backing image's virtual disk, read to compare. Only the clusters where a used
   * block differs from the backing image are written (each as the backing image's cluster with
   * the restored blocks over it); the rest, unused blocks included, read from the backing file.
   */
  backing?: { file: string; format: string; disk: BlockSource };
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
      ...(options.backing
        ? { backing: { file: options.backing.file, format: options.backing.format } }
        : {}),
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
    ...(options.backing
      ? { needsZeroBlocks: true, write: overlayWrites(writer, options.backing.disk) }
      : { write: (offset: number, bytes: Uint8Array) => writer.write(offset, bytes) }),
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

/**
 * Writes into an overlay: a piece equal to the backing disk's bytes is dropped while its
 * cluster is untouched; the first piece that differs brings its cluster in whole (the backing
 * disk's bytes, as QEMU's copy-on-write does), then goes over it. A cluster is brought in once
 * (later pieces wait for it), so concurrent writes never overwrite each other's blocks.
 */
function overlayWrites(
  writer: DiskWriter,
  base: BlockSource,
): (offset: number, bytes: Uint8Array) => Promise<void> {
  const unit = writer.allocationUnit;
  const present = new Set<number>();
  const pending = new Map<number, Promise<void>>();
  /** The backing disk's bytes at `offset` (zeros past its end, as QEMU reads them). */
  const baseBytes = async (offset: number, length: number) => {
    const out = new Uint8Array(length);
    const n = Math.max(0, Math.min(length, base.size - offset));
    if (n > 0) await base.read(offset, out.subarray(0, n));
    return out;
  };
  const bringIn = (cluster: number): Promise<void> => {
    let done = pending.get(cluster);
    if (done === undefined) {
      const start = cluster * unit;
      done = (async () => {
        await writer.write(start, await baseBytes(start, Math.min(unit, writer.size - start)));
        present.add(cluster);
        pending.delete(cluster);
      })();
      pending.set(cluster, done);
    }
    return done;
  };
  return async (offset, bytes) => {
    for (let at = 0; at < bytes.length; ) {
      const cluster = Math.floor((offset + at) / unit);
      const end = Math.min(bytes.length, (cluster + 1) * unit - offset);
      const piece = bytes.subarray(at, end);
      const start = offset + at;
      at = end;
      if (!present.has(cluster)) {
        if (!pending.has(cluster) && equal(piece, await baseBytes(start, piece.length))) continue;
        const whole =
          start === cluster * unit && piece.length === Math.min(unit, writer.size - start);
        if (whole && !pending.has(cluster)) present.add(cluster);
        else await bringIn(cluster);
      }
      await writer.write(start, piece);
    }
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}
