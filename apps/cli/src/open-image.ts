import { basename, dirname, isAbsolute, join } from 'node:path';
import { type ContainerInfo, openContainer } from '@diskube/container';
import { type BlockSource, UnsupportedError } from '@diskube/core';
import { type FileSource, openFileSource } from '@diskube/core/node';

/** An image file opened down to its virtual disk: raw, qcow2, VDI, VMDK, VHD or VHDX. */
export interface OpenedImage {
  /** The virtual disk: what partitions and filesystems are read from. */
  disk: BlockSource;
  container: ContainerInfo;
  /** Byte ranges of the virtual disk the container holds no data for (they read as zeros). */
  unallocated: Array<[number, number]>;
  close(): Promise<void>;
}

/**
 * Opens an image file and the container format inside it (detected by magic, not name). Extent
 * files a VMDK descriptor names are looked up beside it and may not leave that directory.
 */
export async function openImage(path: string): Promise<OpenedImage> {
  const files: FileSource[] = [];
  const file = await openFileSource(path);
  files.push(file);
  const close = async () => {
    for (const f of files.reverse()) await f.close();
  };
  try {
    const opened = await openContainer(file, {
      async resolveExtent(name) {
        if (
          isAbsolute(name) ||
          name.includes('..') ||
          basename(name) !== name.replace(/^\.\//, '')
        ) {
          throw new UnsupportedError(
            `VMDK extent "${name}" is outside the descriptor's directory`,
            {
              reason: 'extent-path',
            },
          );
        }
        const extent = await openFileSource(join(dirname(path), name));
        files.push(extent);
        return extent;
      },
    });
    const unallocated: Array<[number, number]> = [];
    if (opened.format !== 'raw') {
      for await (const range of opened.disk.unallocatedRanges()) unallocated.push(range);
    }
    return { disk: opened.disk, container: opened.info, unallocated, close };
  } catch (error) {
    await close();
    throw error;
  }
}
