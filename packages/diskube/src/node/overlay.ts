import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError, type Warning } from '@diskube/core';
import type { ByteRange } from '@diskube/format';
import type { DiskImage } from '../image.js';

/**
 * One file of an image's backing chain as a backup records it (facts `layers`, overlay first):
 * enough to tell, later, whether an overlay's backing chain is still the one a backup was made
 * of. The file's name, size and modification time (nanoseconds, as `stat` gives them), plus
 * what the format itself records to identify the image (VMDK CID, VDI and VHD(X) ids).
 */
export interface LayerFact {
  file: string;
  format: string;
  fileSize: number;
  virtualSize: number;
  mtimeNs: string;
  identity: Record<string, string>;
}

/** The chain's facts, or undefined for an image not opened from files (`openImageFile`). */
export async function layerFacts(image: DiskImage): Promise<LayerFact[] | undefined> {
  const { files } = image;
  const { chain } = image.container;
  if (!files || files.length !== chain.length) return undefined;
  return Promise.all(
    chain.map(async (layer, i) => {
      const info = await stat(files[i]!, { bigint: true });
      return {
        file: basename(files[i]!),
        format: layer.format,
        fileSize: layer.fileSize,
        virtualSize: layer.virtualSize,
        mtimeNs: info.mtimeNs.toString(),
        identity: { ...layer.identity } as Record<string, string>,
      };
    }),
  );
}

export interface OverlayPlan {
  /** The ranges to read: what the overlay holds; undefined to compare every block by digest. */
  changedRanges: ByteRange[] | undefined;
  /** Why the overlay's layers are not trusted, when they are not. */
  warning: Warning | undefined;
}

/**
 * `overlayOnly`: an incremental of an overlay against a backup of its backing chain reads only
 * the ranges the overlay itself holds (data and zero clusters): everything else reads from the
 * backing files, which are what the parent backup holds. That holds only when the parent was
 * made of exactly these backing files, unchanged since: the parent's recorded `layers` must
 * equal this image's layers below the overlay (names, formats, sizes, modification times and
 * format ids). Otherwise a warning `overlay-untrusted` says why and every used block is compared
 * by digest. An image without a backing file is refused (usage).
 */
export async function planOverlayOnly(
  image: DiskImage,
  layers: readonly LayerFact[] | undefined,
  parentLayers: unknown,
  parentName: string,
): Promise<OverlayPlan> {
  const { chain } = image.container;
  if (chain.length < 2) {
    throw new InvalidArgumentError(
      'the image has no backing file: --overlay-only (overlayOnly) backs up an overlay against a backup of its backing file',
      { reason: 'usage' },
    );
  }
  const why =
    layers === undefined
      ? 'the image was not opened from files, so its backing files cannot be identified'
      : layersMismatch(layers.slice(1), parentLayers, parentName);
  if (why) {
    return {
      changedRanges: undefined,
      warning: {
        code: 'overlay-untrusted',
        message: `only the overlay could not be read: ${why}; every used block is read and compared by digest instead`,
      },
    };
  }
  const changedRanges: ByteRange[] = [];
  for await (const [offset, length] of image.disk.layerRanges()) {
    changedRanges.push({ offset, length });
  }
  // A parent smaller than the overlay: past its end the disk reads zeros the parent never had.
  const below = chain[1]!.virtualSize;
  if (below < image.disk.size) {
    const last = changedRanges.at(-1);
    const start = last && last.offset + last.length > below ? last.offset + last.length : below;
    if (start < image.disk.size)
      changedRanges.push({ offset: start, length: image.disk.size - start });
  }
  return { changedRanges, warning: undefined };
}

const same = (a: Record<string, string>, b: unknown): boolean =>
  typeof b === 'object' &&
  b !== null &&
  Object.keys(a).length === Object.keys(b).length &&
  Object.entries(a).every(([k, v]) => (b as Record<string, unknown>)[k] === v);

/**
 * Why a backup that recorded `recorded` as its chain's files was not made of the files `below`
 * describes now; undefined when it was.
 */
export function layersMismatch(
  below: readonly LayerFact[],
  recorded: unknown,
  parentName: string,
): string | undefined {
  if (!Array.isArray(recorded)) {
    return `${parentName} does not record the files it was made of (made before diskube recorded them, or not from files)`;
  }
  if (recorded.length !== below.length) {
    return `${parentName} was made of a chain of ${recorded.length} file(s), the overlay's backing chain has ${below.length}`;
  }
  for (const [i, now] of below.entries()) {
    const then = recorded[i] as Partial<LayerFact> | null;
    const name = now.file;
    if (!then || typeof then !== 'object') return `${parentName} records no layer ${i + 1}`;
    if (then.file !== now.file)
      return `${parentName} was made of "${String(then.file)}", the overlay's backing file is "${name}"`;
    for (const key of ['format', 'fileSize', 'virtualSize'] as const) {
      if (then[key] !== now[key]) {
        return `"${name}" has ${key} ${now[key]}, ${String(then[key])} when ${parentName} was made`;
      }
    }
    if (then.mtimeNs !== now.mtimeNs) return `"${name}" was modified after ${parentName} was made`;
    if (!same(now.identity, then.identity)) {
      return `"${name}" has other image ids than when ${parentName} was made`;
    }
  }
  return undefined;
}
