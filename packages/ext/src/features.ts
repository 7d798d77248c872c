// Sources: kernel Documentation/filesystems/ext4/super.rst (s_feature_compat, s_feature_incompat,
// s_feature_ro_compat), fs/ext4/ext4.h, e2fsprogs lib/ext2fs/ext2_fs.h (feature bits) and
// lib/ext2fs/ext2fs.h (EXT2_LIB_FEATURE_*_SUPP: what the reference library agrees to open).

/** COMPAT features: a reader may ignore unknown ones. Named for display only. */
export const COMPAT = {
  dir_prealloc: 0x1,
  imagic_inodes: 0x2,
  has_journal: 0x4,
  ext_attr: 0x8,
  resize_inode: 0x10,
  dir_index: 0x20,
  lazy_bg: 0x40,
  exclude_inode: 0x80,
  exclude_bitmap: 0x100,
  sparse_super2: 0x200,
  fast_commit: 0x400,
  stable_inodes: 0x800,
  orphan_file: 0x1000,
} as const;

/** INCOMPAT features: a reader must refuse any bit it does not know. */
export const INCOMPAT = {
  compression: 0x1,
  filetype: 0x2,
  needs_recovery: 0x4,
  journal_dev: 0x8,
  meta_bg: 0x10,
  extent: 0x40,
  '64bit': 0x80,
  mmp: 0x100,
  flex_bg: 0x200,
  ea_inode: 0x400,
  dirdata: 0x1000,
  metadata_csum_seed: 0x2000,
  large_dir: 0x4000,
  inline_data: 0x8000,
  encrypt: 0x10000,
  casefold: 0x20000,
} as const;

/** RO_COMPAT features: unknown ones allow reading in principle, but see below. */
export const RO_COMPAT = {
  sparse_super: 0x1,
  large_file: 0x2,
  btree_dir: 0x4,
  huge_file: 0x8,
  uninit_bg: 0x10,
  dir_nlink: 0x20,
  extra_isize: 0x40,
  snapshot: 0x80,
  quota: 0x100,
  bigalloc: 0x200,
  metadata_csum: 0x400,
  replica: 0x800,
  read_only: 0x1000,
  project: 0x2000,
  shared_blocks: 0x4000,
  verity: 0x8000,
  orphan_present: 0x10000,
} as const;

/**
 * INCOMPAT bits we accept. None of them changes how the block bitmaps are located or read
 * except meta_bg, 64bit and flex_bg, which the driver implements; the rest concern inodes,
 * directories and file contents. Not accepted: `compression` (never in a mainline kernel, its
 * on-disk meaning is undefined for us) and `journal_dev` (an external journal device holds no
 * block bitmaps; refused separately). `needs_recovery` is accepted here and refused as DIRTY.
 */
export const KNOWN_INCOMPAT =
  INCOMPAT.filetype |
  INCOMPAT.needs_recovery |
  INCOMPAT.meta_bg |
  INCOMPAT.extent |
  INCOMPAT['64bit'] |
  INCOMPAT.mmp |
  INCOMPAT.flex_bg |
  INCOMPAT.ea_inode |
  INCOMPAT.dirdata |
  INCOMPAT.metadata_csum_seed |
  INCOMPAT.large_dir |
  INCOMPAT.inline_data |
  INCOMPAT.encrypt |
  INCOMPAT.casefold;

/**
 * RO_COMPAT bits we accept: the set e2fsprogs 1.47 opens (EXT2_LIB_FEATURE_RO_COMPAT_SUPP) plus
 * orphan_present. Unknown RO_COMPAT bits are refused even though we only read: bigalloc was an
 * RO_COMPAT feature and changed the unit of the block bitmap, so an unknown one could change
 * what a bit means, and guessing could under-report. `snapshot` and `replica` are refused
 * for the same reason (their allocation rules are not documented upstream).
 */
export const KNOWN_RO_COMPAT =
  RO_COMPAT.sparse_super |
  RO_COMPAT.large_file |
  RO_COMPAT.huge_file |
  RO_COMPAT.uninit_bg |
  RO_COMPAT.dir_nlink |
  RO_COMPAT.extra_isize |
  RO_COMPAT.quota |
  RO_COMPAT.bigalloc |
  RO_COMPAT.metadata_csum |
  RO_COMPAT.read_only |
  RO_COMPAT.project |
  RO_COMPAT.shared_blocks |
  RO_COMPAT.verity |
  RO_COMPAT.orphan_present;

function names(table: Record<string, number>, bits: number, prefix: string): string[] {
  const out: string[] = [];
  let rest = bits >>> 0;
  for (const [name, bit] of Object.entries(table)) {
    if (rest & bit) {
      out.push(name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  for (let bit = 0; bit < 32; bit++) {
    if (rest & (1 << bit)) out.push(`${prefix}${bit}`);
  }
  return out;
}

/** Feature names as dumpe2fs prints them; unknown bits as `FEATURE_C12`, `FEATURE_I5`, `FEATURE_R20`. */
export function featureNames(compat: number, incompat: number, roCompat: number): string[] {
  return [
    ...names(COMPAT, compat, 'FEATURE_C'),
    ...names(INCOMPAT, incompat, 'FEATURE_I'),
    ...names(RO_COMPAT, roCompat, 'FEATURE_R'),
  ];
}

/** Names of the bits in `bits` that are outside `known`. */
export function unknownFeatureNames(
  table: Record<string, number>,
  bits: number,
  known: number,
  prefix: string,
): string[] {
  return names(table, (bits & ~known) >>> 0, prefix);
}
