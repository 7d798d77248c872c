import { readQcow2Bitmaps } from '@diskube/container';
import { InvalidArgumentError, type Warning } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import type { BackupReader, ByteRange } from '@diskube/format';

/**
 * How a backup records the qcow2 persistent dirty bitmap it was made with, in its header's
 * facts (`dirtyBitmap`). An incremental may read only the bitmap's dirty ranges when its parent
 * backup carries this tie with the same name and granularity: QEMU only ever sets bits in an
 * enabled bitmap, so a bitmap that was tracking when the parent was taken marks a superset of
 * what changed since. A bitmap with fewer dirty granules than the parent recorded was cleared
 * or re-created since, and is stale.
 */
export interface DirtyBitmapTie {
  name: string;
  /** Bytes of the virtual disk per bit. */
  granularity: number;
  /** Dirty granules when the backup was made. */
  dirtyGranules: number;
}

export interface DirtyBitmapPlan {
  /** The tie to record in the new backup. */
  tie: DirtyBitmapTie;
  /** The ranges to read, or undefined to fall back to comparing digests (see `warning`). */
  changedRanges: ByteRange[] | undefined;
  /** Why the bitmap is not used for this incremental, when it is not. */
  warning: Warning | undefined;
}

/**
 * Reads the bitmap `name` of the qcow2 file at `path` and decides whether an incremental against
 * `parent` (the newest backup of the chain, or none for a snapshot) may trust it. A bitmap QEMU
 * left in use is a `DirtyFilesystemError` (reason `bitmap-untrusted`), a missing one an
 * `InvalidArgumentError`.
 */
export async function planDirtyBitmap(
  path: string,
  name: string,
  parent: BackupReader | undefined,
): Promise<DirtyBitmapPlan> {
  const file = await openFileSource(path);
  try {
    const bitmaps = await readQcow2Bitmaps(file);
    const bitmap = bitmaps.find((b) => b.name === name);
    if (!bitmap) {
      const names = bitmaps.map((b) => `"${b.name}"`).join(', ') || 'none';
      throw new InvalidArgumentError(
        `${path} has no persistent dirty bitmap "${name}" (it has ${names}); create one with qemu-img bitmap --add --enable`,
        { reason: 'usage' },
      );
    }
    const changedRanges: ByteRange[] = [];
    let dirtyBytes = 0;
    // dirtyRanges rejects with DIRTY bitmap-untrusted for a bitmap in use or invalidated.
    for await (const [offset, length] of bitmap.dirtyRanges()) {
      changedRanges.push({ offset, length });
      dirtyBytes += length;
    }
    const tie: DirtyBitmapTie = {
      name,
      granularity: bitmap.granularity,
      dirtyGranules: Math.ceil(dirtyBytes / bitmap.granularity),
    };
    if (!parent) return { tie, changedRanges: undefined, warning: undefined };
    const why = staleReason(parent, tie);
    if (why) {
      return {
        tie,
        changedRanges: undefined,
        warning: {
          code: 'dirty-bitmap-untrusted',
          message: `dirty bitmap "${name}" not used: ${why}; every used block is read and compared by digest instead`,
        },
      };
    }
    return { tie, changedRanges, warning: undefined };
  } finally {
    await file.close?.();
  }
}

function staleReason(parent: BackupReader, now: DirtyBitmapTie): string | undefined {
  const recorded = parent.header.meta.dirtyBitmap as Partial<DirtyBitmapTie> | undefined;
  const parentName = parent.path;
  if (!recorded || typeof recorded !== 'object') {
    return `${parentName} was not made with it, so it may not cover every change since`;
  }
  if (recorded.name !== now.name) {
    return `${parentName} was made with bitmap "${String(recorded.name)}"`;
  }
  if (recorded.granularity !== now.granularity) {
    return `its granularity is ${now.granularity} bytes, ${recorded.granularity} when ${parentName} was made (re-created since)`;
  }
  if (typeof recorded.dirtyGranules !== 'number' || now.dirtyGranules < recorded.dirtyGranules) {
    return `it marks ${now.dirtyGranules} granules dirty, fewer than the ${String(recorded.dirtyGranules)} it marked when ${parentName} was made (cleared or re-created since)`;
  }
  return undefined;
}
