import {
  type ContainerDisk,
  type ContainerInfo,
  type OpenContainerOptions,
  openContainer,
  type ResolveParent,
} from '@diskube/container';
import type { BlockSource } from '@diskube/core';

/** An image opened down to its virtual disk: raw, qcow2, VDI, VMDK, VHD or VHDX. */
export interface DiskImage {
  /** The virtual disk: what partitions and filesystems are read from. */
  readonly disk: ContainerDisk;
  /** The container's format, virtual size, allocation unit and details. */
  readonly container: ContainerInfo;
  /**
   * The files of the backing chain, overlay first (one per `container.chain` layer), when the
   * image was opened from files by `openImageFile` (`diskube/node`); undefined otherwise.
   */
  readonly files?: readonly string[];
  /** Closes the image file and any extent and parent files opened for it. */
  close(): Promise<void>;
}

export interface OpenImageOptions {
  /**
   * Opens a file a VMDK descriptor names as an extent (the name exactly as the descriptor writes
   * it). Without it, a descriptor with separate extent files is refused as UNSUPPORTED. Sources
   * it returns are closed with the image. `openImageFile` from `diskube/node` supplies one that
   * only opens files beside the descriptor.
   */
  resolveExtent?: (name: string) => Promise<BlockSource>;
  /**
   * Opens the parent an overlay names (qcow2 backing file, VMDK parent, differencing VDI, VHD,
   * VHDX): see `@diskube/container`'s `resolveParent`. Without it, an image with a parent is
   * refused as UNSUPPORTED (reason `backing-file`). Sources it returns are closed with the
   * image; return one source per file (a loop is detected by source identity).
   * `openImageFile` supplies one that opens parents beside their child (and in
   * `allowBackingDir`).
   */
  resolveParent?: ResolveParent;
  /** Byte budget of the container's metadata cache (L2 tables, grain tables). Default 4 MiB. */
  cacheBytes?: number;
}

/**
 * Opens the container inside `file` (detected by magic, not by name). The image owns `file`
 * from here on: `close()` closes it (when it has a `close`) and every extent opened for it.
 */
export async function openImage(
  file: BlockSource,
  options: OpenImageOptions = {},
): Promise<DiskImage> {
  const opened: BlockSource[] = [file];
  const close = async () => {
    for (const source of opened.reverse()) await source.close?.();
    opened.length = 0;
  };
  const containerOptions: OpenContainerOptions = {};
  if (options.cacheBytes !== undefined) containerOptions.cacheBytes = options.cacheBytes;
  const resolve = options.resolveExtent;
  if (resolve) {
    containerOptions.resolveExtent = async (name) => {
      const extent = await resolve(name);
      opened.push(extent);
      return extent;
    };
  }
  const resolveParent = options.resolveParent;
  if (resolveParent) {
    containerOptions.resolveParent = async (hint, context) => {
      const parent = await resolveParent(hint, context);
      if (!opened.includes(parent)) opened.push(parent);
      return parent;
    };
  }
  try {
    const { disk, info } = await openContainer(file, containerOptions);
    return { disk, container: info, close };
  } catch (error) {
    await close();
    throw error;
  }
}
