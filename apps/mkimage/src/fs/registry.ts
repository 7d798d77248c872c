// The filesystems mkimage can build: one line per builder. The parser, the partition table,
// the build and the test helpers (fsck, file extraction, required tools) all read this list.
import { btrfsBuilder } from './btrfs.js';
import type { FilesystemBuilder } from './builder.js';
import { extBuilder } from './ext.js';
import { fatBuilder } from './fat.js';
import { lvmBuilder } from './lvm.js';
import { ntfsBuilder } from './ntfs.js';
import { rawBuilder, swapBuilder } from './swap.js';
import { xfsBuilder } from './xfs.js';

export const BUILDERS: readonly FilesystemBuilder[] = [
  extBuilder,
  ntfsBuilder,
  fatBuilder,
  xfsBuilder,
  btrfsBuilder,
  swapBuilder,
  rawBuilder,
  lvmBuilder,
];

/** Every DSL type name, in registry order (for error messages). */
export const FS_TYPES: readonly string[] = BUILDERS.flatMap((b) => b.names);

/** The builder of a DSL type name (`ext4` → the ext builder), or undefined. */
export function builderOf(type: string): FilesystemBuilder | undefined {
  return BUILDERS.find((b) => b.names.includes(type));
}
