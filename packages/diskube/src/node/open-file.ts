import { basename, dirname, isAbsolute, join } from 'node:path';
import { UnsupportedError } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { type DiskImage, type OpenImageOptions, openImage } from '../image.js';
import { type Inspection, inspectImage } from '../inspect.js';
import type { MapOptions } from '../map.js';

export interface OpenImageFileOptions extends Omit<OpenImageOptions, 'resolveExtent'> {}

/**
 * Opens an image file and the container inside it. Extent files a VMDK descriptor names are
 * opened beside the descriptor and may not leave its directory: a name that is absolute, holds
 * `..` or a directory part is refused as UNSUPPORTED (reason `extent-path`), so a crafted
 * descriptor cannot make a backup read `/etc/shadow`.
 */
export async function openImageFile(
  path: string,
  options: OpenImageFileOptions = {},
): Promise<DiskImage> {
  const file = await openFileSource(path);
  return openImage(file, {
    ...options,
    async resolveExtent(name) {
      if (isAbsolute(name) || name.includes('..') || basename(name) !== name.replace(/^\.\//, '')) {
        throw new UnsupportedError(`VMDK extent "${name}" is outside the descriptor's directory`, {
          reason: 'extent-path',
        });
      }
      return openFileSource(join(dirname(path), name));
    },
  });
}

/** `inspectImage` of an image file: opens it, describes it, closes it. */
export async function inspectImageFile(
  path: string,
  options: OpenImageFileOptions & MapOptions = {},
): Promise<Inspection> {
  const image = await openImageFile(path, options);
  try {
    return await inspectImage(image, options);
  } finally {
    await image.close();
  }
}
