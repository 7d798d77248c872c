import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  type CrossCheckReport,
  DirtyFilesystemError,
  DiskubeError,
  type FilesystemDriver,
  type ProbeResult,
  readStructure,
  UnsupportedError,
  type UsedBlocks,
  type UsedBlocksOptions,
  type Warning,
} from '@diskube/core';
import {
  COMPAT,
  featureNames,
  INCOMPAT,
  KNOWN_INCOMPAT,
  KNOWN_RO_COMPAT,
  RO_COMPAT,
  unknownFeatureNames,
} from './features.js';
import {
  BG_BLOCK_UNINIT,
  blockBitmapChecksum,
  groupDescriptorChecksum,
  parseGroupDescriptor,
} from './group-descriptor.js';
import { descriptorBlock, groupFirstBlock, groupOverhead } from './layout.js';
import { MMP_SEQ_CLEAN, MMP_SEQ_FSCK, parseMmp } from './mmp.js';
import { checkOverlaps, type GroupPointers, outsideOwnGroup } from './placement.js';
import {
  checksumSeed,
  type Geometry,
  geometry,
  hasCompat,
  hasExtMagic,
  hasGroupDescChecksum,
  hasIncompat,
  hasRoCompat,
  parseSuperblock,
  STATE_ERROR,
  STATE_VALID,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  type Superblock,
  superblockChecksum,
} from './superblock.js';
import { crossCheckWalk } from './walk.js';

/** Largest single read: batches of contiguous descriptor or bitmap blocks stay below this. */
const MAX_READ_BYTES = 1 << 20;

/** ext2, ext3 or ext4, the way blkid names them: by the features in use. */
export function filesystemName(sb: Superblock): 'ext2' | 'ext3' | 'ext4' {
  const ext3Incompat = INCOMPAT.filetype | INCOMPAT.needs_recovery | INCOMPAT.meta_bg;
  const ext3RoCompat = RO_COMPAT.sparse_super | RO_COMPAT.large_file | RO_COMPAT.btree_dir;
  if ((sb.featureIncompat & ~ext3Incompat) !== 0 || (sb.featureRoCompat & ~ext3RoCompat) !== 0) {
    return 'ext4';
  }
  return hasCompat(sb, COMPAT.has_journal) ? 'ext3' : 'ext2';
}

async function readSuperblock(source: BlockSource): Promise<{ bytes: Uint8Array; sb: Superblock }> {
  const bytes = await readStructure(source, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, 'ext4 superblock');
  return { bytes, sb: parseSuperblock(bytes, SUPERBLOCK_OFFSET) };
}

/** Refuse what we cannot read correctly: unknown INCOMPAT/RO_COMPAT bits, a journal device. */
function checkFeatures(sb: Superblock): void {
  if (hasIncompat(sb, INCOMPAT.journal_dev)) {
    throw new UnsupportedError('this is an external journal device, not a filesystem', {
      structure: 'ext4 superblock',
      offset: SUPERBLOCK_OFFSET + 0x60,
      reason: 'journal-device',
    });
  }
  const unknown = [
    ...unknownFeatureNames(INCOMPAT, sb.featureIncompat, KNOWN_INCOMPAT, 'FEATURE_I'),
    ...unknownFeatureNames(RO_COMPAT, sb.featureRoCompat, KNOWN_RO_COMPAT, 'FEATURE_R'),
  ];
  if (unknown.length > 0) {
    throw new UnsupportedError(`unsupported features: ${unknown.join(', ')}`, {
      structure: 'ext4 superblock',
      offset: SUPERBLOCK_OFFSET + 0x60,
      reason: 'unknown-feature',
    });
  }
}

/**
 * Multi-mount protection: a sequence other than "clean" means another node has the filesystem
 * mounted (or e2fsck is running on it), so its bitmaps are changing under us.
 */
async function mmpDoubt(source: BlockSource, sb: Superblock): Promise<DiskubeError | null> {
  const structure = 'ext4 MMP block';
  if (sb.mmpBlock < sb.firstDataBlock || sb.mmpBlock >= sb.blocksCount) {
    return new CorruptError(`MMP block ${sb.mmpBlock} is outside the filesystem`, {
      structure: 'ext4 superblock',
      offset: SUPERBLOCK_OFFSET + 0x168,
      reason: 'bad-location',
    });
  }
  const offset = sb.mmpBlock * sb.blockSize;
  try {
    const mmp = parseMmp(await readStructure(source, offset, 1024, structure), offset);
    if (mmp.seq === MMP_SEQ_CLEAN) return null;
    const who = mmp.nodeName !== '' ? ` by ${mmp.nodeName}` : '';
    return new DirtyFilesystemError(
      mmp.seq === MMP_SEQ_FSCK
        ? 'e2fsck is running on the filesystem (MMP)'
        : `the filesystem is in use${who} (MMP sequence 0x${mmp.seq.toString(16)})`,
      { structure, offset, reason: 'mmp-in-use' },
    );
  } catch (e) {
    if (DiskubeError.isInstance(e) && e.code === 'CORRUPT') return e;
    throw e;
  }
}

/** Reasons not to trust the bitmaps, in the order they are reported. */
function doubts(sb: Superblock, sbBytes: Uint8Array): DiskubeError[] {
  const out: DiskubeError[] = [];
  if (hasRoCompat(sb, RO_COMPAT.metadata_csum)) {
    const want = superblockChecksum(sbBytes);
    if (want !== sb.checksum) {
      out.push(
        new CorruptError(
          `superblock checksum 0x${sb.checksum.toString(16)} != computed 0x${want.toString(16)}`,
          { structure: 'ext4 superblock', offset: SUPERBLOCK_OFFSET + 0x3fc, reason: 'checksum' },
        ),
      );
    }
  }
  const at = { structure: 'ext4 superblock', offset: SUPERBLOCK_OFFSET };
  // A pending journal may hold allocations the bitmaps do not show yet.
  if (hasIncompat(sb, INCOMPAT.needs_recovery)) {
    out.push(
      new DirtyFilesystemError('the journal needs recovery (mounted, or not cleanly unmounted)', {
        ...at,
        reason: 'needs-recovery',
      }),
    );
  }
  if ((sb.state & STATE_ERROR) !== 0) {
    out.push(
      new DirtyFilesystemError('the filesystem has recorded errors', { ...at, reason: 'errors' }),
    );
  }
  if ((sb.state & STATE_VALID) === 0) {
    out.push(
      new DirtyFilesystemError('the filesystem was not cleanly unmounted', {
        ...at,
        reason: 'not-clean',
      }),
    );
  }
  return out;
}

function facts(sb: Superblock, geo: Geometry): UsedBlocks['facts'] {
  const hex = Array.from(sb.uuid, (b) => b.toString(16).padStart(2, '0')).join('');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const state = [
    sb.state & STATE_VALID ? 'clean' : 'not clean',
    ...(sb.state & STATE_ERROR ? ['with errors'] : []),
  ].join(' ');
  let journal = 'none';
  if (hasCompat(sb, COMPAT.has_journal)) journal = sb.journalInum !== 0 ? 'internal' : 'external';
  return {
    label: sb.volumeName,
    uuid,
    features: featureNames(sb.featureCompat, sb.featureIncompat, sb.featureRoCompat),
    state,
    revision: sb.revLevel,
    blockSize: sb.blockSize,
    clusterSize: sb.clusterSize,
    blocks: sb.blocksCount,
    groups: geo.groupCount,
    blocksPerGroup: sb.blocksPerGroup,
    inodes: sb.inodesCount,
    inodesPerGroup: sb.inodesPerGroup,
    inodeSize: sb.inodeSize,
    descriptorSize: sb.descSize,
    reservedGdtBlocks: sb.reservedGdtBlocks,
    flexGroupSize: hasIncompat(sb, INCOMPAT.flex_bg) ? 2 ** Math.min(sb.logGroupsPerFlex, 31) : 1,
    journal,
    lastMounted: sb.lastMounted,
  };
}

/** Group descriptors reduced to what the scan needs, one array slot per group. */
export interface Groups extends GroupPointers {
  /** 1 when BLOCK_UNINIT is set and honoured (the descriptor has a valid checksum). */
  uninit: Uint8Array;
  bitmapCsum: Float64Array;
  /** bg_free_blocks_count: free clusters according to the descriptor. */
  freeClusters: Float64Array;
  /** bg_flags as stored. */
  flags: Uint16Array;
  /** bg_itable_unused as stored. */
  itableUnused: Float64Array;
  /** 1 when the group's bitmap could not be trusted and the whole group is kept. */
  keptWhole: Uint8Array;
}

/** [first block, count] runs of the primary descriptor table, merged where contiguous. */
function descriptorRuns(sb: Superblock, geo: Geometry): Array<[number, number, number]> {
  const runs: Array<[block: number, count: number, firstIndex: number]> = [];
  const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / sb.blockSize));
  for (let i = 0; i < geo.descBlocks; i++) {
    const block = descriptorBlock(sb, geo, i);
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === block && last[1] < perRead) last[1]++;
    else runs.push([block, 1, i]);
  }
  return runs;
}

async function readGroups(
  source: BlockSource,
  sb: Superblock,
  geo: Geometry,
  signal: AbortSignal | undefined,
): Promise<Groups> {
  const n = geo.groupCount;
  const groups: Groups = {
    blockBitmap: new Float64Array(n),
    inodeBitmap: new Float64Array(n),
    inodeTable: new Float64Array(n),
    descOffset: new Float64Array(n),
    uninit: new Uint8Array(n),
    bitmapCsum: new Float64Array(n),
    freeClusters: new Float64Array(n),
    flags: new Uint16Array(n),
    itableUnused: new Float64Array(n),
    keptWhole: new Uint8Array(n),
  };
  const csum = hasGroupDescChecksum(sb);
  const method = hasRoCompat(sb, RO_COMPAT.metadata_csum)
    ? ({ metadataCsum: true, seed: checksumSeed(sb) } as const)
    : ({ metadataCsum: false, uuid: sb.uuid } as const);
  const structure = 'ext4 group descriptor';
  for (const [block, count, firstIndex] of descriptorRuns(sb, geo)) {
    signal?.throwIfAborted();
    if (block + count > sb.blocksCount) {
      throw new CorruptError(`descriptor block ${block} is outside the filesystem`, {
        structure,
        offset: block * sb.blockSize,
        reason: 'bad-location',
      });
    }
    const base = block * sb.blockSize;
    const bytes = await readStructure(source, base, count * sb.blockSize, structure);
    const firstGroup = firstIndex * geo.descPerBlock;
    const lastGroup = Math.min(n, (firstIndex + count) * geo.descPerBlock);
    for (let g = firstGroup; g < lastGroup; g++) {
      const at = (g - firstGroup) * sb.descSize;
      const offset = base + at;
      const d = parseGroupDescriptor(bytes, at, sb.descSize, offset);
      if (csum) {
        const want = groupDescriptorChecksum(bytes, at, sb.descSize, g, method);
        if (want !== d.checksum) {
          throw new CorruptError(
            `group ${g} descriptor checksum 0x${d.checksum.toString(16)} != computed 0x${want.toString(16)}`,
            { structure, offset: offset + 0x1e, reason: 'checksum' },
          );
        }
      }
      // Every location must lie inside the filesystem: with flex_bg they may be in any group.
      const inside = (start: number, len: number): boolean =>
        start >= sb.firstDataBlock && start + len <= sb.blocksCount;
      if (!inside(d.blockBitmap, 1) || !inside(d.inodeBitmap, 1)) {
        throw new CorruptError(`group ${g} bitmap location is outside the filesystem`, {
          structure,
          offset,
          reason: 'bad-location',
        });
      }
      if (!inside(d.inodeTable, geo.inodeTableBlocks)) {
        throw new CorruptError(`group ${g} inode table is outside the filesystem`, {
          structure,
          offset: offset + 0x8,
          reason: 'bad-location',
        });
      }
      if (
        outsideOwnGroup(sb, geo, g, d.blockBitmap, 1) ||
        outsideOwnGroup(sb, geo, g, d.inodeBitmap, 1) ||
        outsideOwnGroup(sb, geo, g, d.inodeTable, geo.inodeTableBlocks)
      ) {
        throw new CorruptError(
          `group ${g} has a bitmap or inode table outside the group (no flex_bg)`,
          {
            structure,
            offset,
            reason: 'bad-location',
          },
        );
      }
      groups.blockBitmap[g] = d.blockBitmap;
      groups.inodeBitmap[g] = d.inodeBitmap;
      groups.inodeTable[g] = d.inodeTable;
      groups.descOffset[g] = offset;
      groups.bitmapCsum[g] = d.blockBitmapCsum;
      groups.freeClusters[g] = d.freeBlocksCount;
      groups.flags[g] = d.flags;
      groups.itableUnused[g] = d.itableUnused;
      // BLOCK_UNINIT means anything only when descriptors are checksummed (the kernel and
      // e2fsprogs ignore the flag otherwise); the checksum was verified above.
      groups.uninit[g] = csum && (d.flags & BG_BLOCK_UNINIT) !== 0 ? 1 : 0;
    }
  }
  return groups;
}

/** Allocation-unit (cluster) view of the filesystem and the bitmap it fills. */
class UnitMap {
  constructor(
    readonly used: Bitmap,
    readonly ratio: number,
  ) {}

  /** Mark blocks [start, start + count) used, clipped to the bitmap. */
  markBlocks(start: number, count: number): void {
    if (count <= 0) return;
    const first = Math.floor(start / this.ratio);
    const last = Math.min(Math.floor((start + count - 1) / this.ratio), this.used.length - 1);
    if (last >= first) this.used.setRange(first, last - first + 1);
  }

  /** Mark units [start, start + count) used, clipped to the bitmap. */
  markUnits(start: number, count: number): void {
    const n = Math.min(count, this.used.length - start);
    if (n > 0) this.used.setRange(start, n);
  }

  /**
   * Copy `bitCount` on-disk bitmap bits from `bytes[at…]` to unit `unit`. With 1 KiB blocks
   * the groups start at block 1, so group bitmaps land one bit past a byte boundary: shift
   * them, keeping the bits already there below the boundary.
   */
  copy(unit: number, bytes: Uint8Array, at: number, bitCount: number): void {
    const n = Math.min(bitCount, this.used.length - unit);
    if (n <= 0) return;
    const shift = unit % 8;
    if (shift === 0) {
      this.used.setBytes(unit, bytes.subarray(at, at + Math.ceil(n / 8)), n);
      return;
    }
    const base = unit - shift;
    const src = bytes.subarray(at, at + Math.ceil(n / 8));
    const out = new Uint8Array(Math.ceil((n + shift) / 8));
    for (let k = 0; k < shift; k++) if (this.used.get(base + k)) out[0]! |= 1 << k;
    for (let j = 0; j < src.length; j++) {
      const v = src[j]!;
      out[j] = out[j]! | ((v << shift) & 0xff);
      if (j + 1 < out.length) out[j + 1] = v >>> (8 - shift);
    }
    this.used.setBytes(base, out, n + shift);
  }
}

/** What the bitmap scan works on. */
interface Scan {
  sb: Superblock;
  geo: Geometry;
  groups: Groups;
  map: UnitMap;
  /** Units (clusters) of the used map. */
  unitCount: number;
  warnings: Warning[];
}

/** Keep every unit of group `g`: its allocation map was shown wrong; say why in a warning. */
function keepGroup(scan: Scan, g: number, unit: number, units: number, warning: Warning): void {
  scan.map.markUnits(unit, units);
  scan.groups.keptWhole[g] = 1;
  scan.warnings.push(warning);
}

/** Read every initialised group's bitmap, batching contiguous bitmap blocks (flex_bg). */
async function readBitmaps(
  source: BlockSource,
  scan: Scan,
  signal: AbortSignal | undefined,
): Promise<CorruptError[]> {
  const { sb, geo, groups, map, unitCount } = scan;
  const doubts: CorruptError[] = [];
  const order: number[] = [];
  for (let g = 0; g < geo.groupCount; g++) if (groups.uninit[g] === 0) order.push(g);
  order.sort((a, b) => groups.blockBitmap[a]! - groups.blockBitmap[b]!);
  const verify = hasRoCompat(sb, RO_COMPAT.metadata_csum);
  const seed = verify ? checksumSeed(sb) : 0;
  const perRead = Math.max(1, Math.floor(MAX_READ_BYTES / sb.blockSize));
  const bytesPerGroup = sb.clustersPerGroup / 8;
  let i = 0;
  while (i < order.length) {
    signal?.throwIfAborted();
    // A run of groups whose bitmaps sit in consecutive blocks becomes one read.
    const first = groups.blockBitmap[order[i]!]!;
    let j = i + 1;
    while (
      j < order.length &&
      j - i < perRead &&
      groups.blockBitmap[order[j]!] === first + (j - i)
    ) {
      j++;
    }
    const buffer = await readStructure(
      source,
      first * sb.blockSize,
      (j - i) * sb.blockSize,
      'ext4 block bitmap',
    );
    for (let k = i; k < j; k++) {
      const g = order[k]!;
      const at = (k - i) * sb.blockSize;
      const unit = groupFirstBlock(sb, g) / sb.clusterRatio;
      const units = Math.min(sb.clustersPerGroup, unitCount - unit);
      if (verify) {
        const want = blockBitmapChecksum(buffer, at, sb.clustersPerGroup, seed, sb.descSize);
        if (want !== groups.bitmapCsum[g]) {
          // The bitmap cannot be trusted: keep the whole group rather than guess.
          keepGroup(scan, g, unit, units, {
            code: 'bitmap-checksum',
            message: `block bitmap of group ${g} fails its checksum; the whole group is kept`,
            offset: first * sb.blockSize + at,
          });
          continue;
        }
      }
      const bits = Math.min(units, bytesPerGroup * 8);
      // The descriptor's free count is written in the same transaction as the bitmap (the
      // kernel's mballoc calls a difference "block bitmap and bg descriptor inconsistent").
      const free = bits - countSetBits(buffer, at, bits);
      if (free !== groups.freeClusters[g]) {
        const message = `group ${g}: its block bitmap has ${free} free clusters, its descriptor says ${groups.freeClusters[g]}`;
        if (verify) {
          // Checksummed bitmap and descriptor: the damage is confined to this group.
          keepGroup(scan, g, unit, units, {
            code: 'free-count',
            message: `${message}; the whole group is kept`,
            offset: groups.descOffset[g]! + 0xc,
          });
          continue;
        }
        // Without checksums nothing vouches for any other group's bitmap either.
        doubts.push(
          new CorruptError(`${message} (bitmaps without checksums)`, {
            structure: 'ext4 group descriptor',
            offset: groups.descOffset[g]! + 0xc,
            reason: 'free-count',
          }),
        );
      }
      map.copy(unit, buffer, at, bits);
    }
    i = j;
  }
  return doubts;
}

const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;

/** Set bits among the first `bits` bits of `bytes[at…]` (little-endian bit order). */
export function countSetBits(bytes: Uint8Array, at: number, bits: number): number {
  const whole = bits >>> 3;
  let n = 0;
  for (let k = 0; k < whole; k++) n += POPCOUNT[bytes[at + k]!]!;
  const rest = bits & 7;
  if (rest > 0) n += POPCOUNT[bytes[at + whole]! & ((1 << rest) - 1)]!;
  return n;
}

/**
 * BLOCK_UNINIT groups have no bitmap on disk: their used set is computed from the layout (done
 * by `markLayout`), and the kernel sets the descriptor's free count to exactly what that layout
 * leaves (ext4_free_clusters_after_init). A smaller count means blocks were allocated in a group
 * still flagged uninitialised: keep that group whole.
 */
function checkUninitGroups(scan: Scan, layout: Array<[number, number]>): void {
  const { sb, geo, groups, unitCount } = scan;
  let r = 0;
  for (let g = 0; g < geo.groupCount; g++) {
    if (groups.uninit[g] === 0) continue;
    const unit = groupFirstBlock(sb, g) / sb.clusterRatio;
    const units = Math.min(sb.clustersPerGroup, unitCount - unit);
    if (units <= 0) continue;
    // Layout units inside the group, from the merged runs (groups come in ascending order).
    while (r < layout.length && layout[r]![1] <= unit) r++;
    let inLayout = 0;
    for (let k = r; k < layout.length && layout[k]![0] < unit + units; k++) {
      inLayout += Math.min(layout[k]![1], unit + units) - Math.max(layout[k]![0], unit);
    }
    const free = units - inLayout;
    if (free === groups.freeClusters[g]) continue;
    keepGroup(scan, g, unit, units, {
      code: 'free-count',
      message: `group ${g} is BLOCK_UNINIT, whose layout leaves ${free} free clusters, but its descriptor says ${groups.freeClusters[g]}; the whole group is kept`,
      offset: groups.descOffset[g]! + 0xc,
    });
  }
}

/**
 * The superblock's total free count. The ext4 driver overwrites it from the descriptors at every
 * mount and writes it back only when it commits the superblock (ext4_percpu_param_init,
 * ext4_commit_super); e2fsck rewrites it silently even on a clean filesystem ("for cosmetic
 * reasons only") and a wrong total alone does not make e2fsck's verdict fail (PR_NO_OK). So on
 * ext4 it is a lazy counter and proves nothing. The ext2 and ext3 drivers kept it equal to the
 * sum of the group counts at every superblock write: there a difference is evidence against
 * the bitmaps, which have no checksum to vouch for them.
 */
function checkTotal(sb: Superblock, geo: Geometry, groups: Groups): CorruptError | null {
  if (filesystemName(sb) === 'ext4') return null;
  let free = 0;
  for (let g = 0; g < geo.groupCount; g++) free += groups.freeClusters[g]!;
  const blocks = free * sb.clusterRatio;
  if (blocks === sb.freeBlocksCount) return null;
  return new CorruptError(
    `the superblock counts ${sb.freeBlocksCount} free blocks, the groups ${blocks}`,
    { structure: 'ext4 superblock', offset: SUPERBLOCK_OFFSET + 0xc, reason: 'free-count' },
  );
}

/**
 * Mark what the layout says is used in every group, whether or not its bitmap was read, and
 * return those units as sorted, merged [start, end) runs (for the BLOCK_UNINIT free counts,
 * which are computed from them without reading the map's pages).
 */
function markLayout(
  sb: Superblock,
  geo: Geometry,
  groups: Groups,
  map: UnitMap,
): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  const ratio = sb.clusterRatio;
  const add = (start: number, count: number): void => {
    if (count <= 0) return;
    const end = Math.min(Math.floor((start + count - 1) / ratio) + 1, map.used.length);
    const first = Math.floor(start / ratio);
    if (end > first) runs.push([first, end]);
  };
  for (let g = 0; g < geo.groupCount; g++) {
    for (const [start, count] of groupOverhead(sb, geo, g)) add(start, count);
    // With flex_bg these may sit in another group; marking them wherever they are covers the
    // BLOCK_UNINIT group that holds them (its bitmap was never read).
    add(groups.blockBitmap[g]!, 1);
    add(groups.inodeBitmap[g]!, 1);
    add(groups.inodeTable[g]!, geo.inodeTableBlocks);
  }
  runs.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const run of runs) {
    const last = merged[merged.length - 1];
    if (last && run[0] <= last[1]) last[1] = Math.max(last[1], run[1]);
    else merged.push([run[0], run[1]]);
  }
  for (const [start, end] of merged) map.markUnits(start, end - start);
  return merged;
}

/**
 * The driver for ext2, ext3 and ext4. See FORMAT.md for the fields relied on and the README for
 * the policy on dirty filesystems, checksum mismatches and the tail after the filesystem.
 */
export const extDriver: FilesystemDriver = {
  name: 'ext',

  async probe(source: BlockSource): Promise<ProbeResult | null> {
    try {
      if (source.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) return null;
      const bytes = new Uint8Array(SUPERBLOCK_SIZE);
      await source.read(SUPERBLOCK_OFFSET, bytes);
      if (!hasExtMagic(bytes)) return null;
      const sb = parseSuperblock(bytes);
      if (hasIncompat(sb, INCOMPAT.journal_dev)) return null;
      const result: ProbeResult = { filesystem: filesystemName(sb), blockSize: sb.clusterSize };
      if (sb.volumeName !== '') result.label = sb.volumeName;
      return result;
    } catch {
      return null;
    }
  },

  async usedBlocks(source: BlockSource, options: UsedBlocksOptions = {}): Promise<UsedBlocks> {
    const { signal } = options;
    signal?.throwIfAborted();
    const { bytes, sb } = await readSuperblock(source);
    checkFeatures(sb);
    const geo = geometry(sb);
    const fsBytes = sb.blocksCount * sb.blockSize;
    if (fsBytes > source.size) {
      throw new CorruptError(
        `the filesystem needs ${fsBytes} bytes but the source has ${source.size}`,
        { structure: 'ext4 superblock', offset: SUPERBLOCK_OFFSET + 0x4, reason: 'truncated' },
      );
    }
    // Clusters covering the filesystem. A partial last cluster (bigalloc with a block count that
    // is not a multiple of the ratio) that the source cannot hold whole goes to the tail, kept.
    let unitCount = Math.ceil(sb.blocksCount / sb.clusterRatio);
    let partialCluster = false;
    if (unitCount * sb.clusterSize > source.size) {
      unitCount--;
      partialCluster = true;
    }
    const tailOffset = unitCount * sb.clusterSize;
    const warnings: Warning[] = [];
    const result = (used: Bitmap, doubt: boolean): UsedBlocks => ({
      filesystem: filesystemName(sb),
      blockSize: sb.clusterSize,
      blockCount: unitCount,
      used,
      tail: {
        offset: tailOffset,
        length: source.size - tailOffset,
        // In doubt even the size may be stale (a journalled resize), so keep the tail too.
        used: doubt || partialCluster,
        reason: doubt
          ? 'kept: filesystem metadata in doubt'
          : partialCluster
            ? 'partial last cluster of the filesystem'
            : 'after end of filesystem',
      },
      warnings,
      facts: facts(sb, geo),
    });

    const allUsed = (reasons: DiskubeError[]): UsedBlocks => {
      for (const e of reasons) {
        warnings.push({
          code: 'assumed-used',
          message: e.message,
          reason: e.reason ?? e.code.toLowerCase(),
          ...(e.offset !== undefined ? { offset: e.offset } : {}),
        });
      }
      return result(new Bitmap(unitCount).setAll(), true);
    };

    const distrust = doubts(sb, bytes);
    if (hasIncompat(sb, INCOMPAT.mmp)) {
      const mmp = await mmpDoubt(source, sb);
      if (mmp) distrust.push(mmp);
    }
    if (distrust.length > 0) {
      if (!options.assumeUsedOnDoubt) throw distrust[0];
      return allUsed(distrust);
    }

    let groups: Groups;
    try {
      groups = await readGroups(source, sb, geo, signal);
      const overlap = checkOverlaps(
        sb,
        geo,
        groups,
        hasIncompat(sb, INCOMPAT.mmp) ? sb.mmpBlock : null,
      );
      if (overlap) throw overlap;
    } catch (e) {
      if (options.assumeUsedOnDoubt && DiskubeError.isInstance(e) && e.code === 'CORRUPT') {
        return allUsed([e]);
      }
      throw e;
    }

    const used = new Bitmap(unitCount);
    const map = new UnitMap(used, sb.clusterRatio);
    let crossCheck: CrossCheckReport | undefined;
    const scan: Scan = { sb, geo, groups, map, unitCount, warnings };
    const evidence = await readBitmaps(source, scan, signal);
    const layout = markLayout(sb, geo, groups, map);
    checkUninitGroups(scan, layout);
    if (evidence.length === 0) {
      const total = checkTotal(sb, geo, groups);
      if (total) evidence.push(total);
    }
    if (evidence.length > 0) {
      // Once one unchecksummed bitmap is shown wrong, none is trusted (core's doubt policy).
      if (!options.assumeUsedOnDoubt) throw evidence[0];
      warnings.length = 0;
      const first = evidence[0]!;
      if (evidence.length > 1) first.message += ` (and ${evidence.length - 1} more groups)`;
      return allUsed([first]);
    }
    if (options.crossCheck) {
      const walk = await crossCheckWalk(source, sb, geo, groups, used, signal);
      warnings.push(...walk.warnings);
      crossCheck = walk.report;
    }
    if (tailOffset + sb.blockSize <= source.size && !partialCluster) {
      warnings.push({
        code: 'tail-after-filesystem',
        message: `${source.size - tailOffset} bytes after the end of the filesystem are not part of it and are not kept`,
        offset: tailOffset,
      });
    }
    const out = result(used, false);
    if (crossCheck) out.crossCheck = crossCheck;
    return out;
  },
};
