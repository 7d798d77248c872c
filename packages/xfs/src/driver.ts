import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
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
import { agflSize, parseAgf } from './agf.js';
import { parseAgfl } from './agfl.js';
import { allocMaxLevels, type FreeSpace, walkBnoBtree } from './btree.js';
import { findLogState } from './log.js';
import {
  agLength,
  agOffset,
  featureNames,
  fsblockToAg,
  hasXfsMagic,
  INCOMPAT,
  parseSuperblock,
  type Superblock,
  superblockCrcOk,
  unknownFeatures,
  VERSION,
} from './superblock.js';

const SB = 'XFS superblock';

/** The superblock sector (sb_sectsize bytes: the v5 CRC covers all of it) and its fields. */
async function readSuperblock(
  source: BlockSource,
): Promise<{ sector: Uint8Array; sb: Superblock }> {
  const first = await readStructure(source, 0, 512, SB);
  const sb = parseSuperblock(first);
  const sector = sb.sectsize === 512 ? first : await readStructure(source, 0, sb.sectsize, SB);
  return { sector, sb };
}

function uuidText(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function facts(sb: Superblock): UsedBlocks['facts'] {
  return {
    label: sb.label,
    uuid: uuidText(sb.uuid),
    version: sb.version,
    features: featureNames(sb),
    blockSize: sb.blockSize,
    sectorSize: sb.sectsize,
    inodeSize: sb.inodesize,
    blocks: sb.dblocks,
    agCount: sb.agcount,
    agBlocks: sb.agblocks,
    log: sb.logstart !== 0 ? 'internal' : 'external',
    logBlocks: sb.logblocks,
    inodes: sb.icount,
  };
}

/** The internal log's place, checked to lie inside one AG past its headers. */
function logExtent(sb: Superblock): { agno: number; agbno: number; offset: number } {
  const { agno, agbno } = fsblockToAg(sb, sb.logstart);
  const headerBlocks = Math.ceil((4 * sb.sectsize) / sb.blockSize);
  if (
    agno >= sb.agcount ||
    agbno < headerBlocks ||
    sb.logblocks === 0 ||
    agbno + sb.logblocks > agLength(sb, agno) ||
    sb.logblocks * sb.blockSize > 2 ** 31
  ) {
    throw new CorruptError(`log of ${sb.logblocks} blocks at fsblock ${sb.logstart}`, {
      structure: SB,
      offset: 0x30,
      reason: 'bad-log-location',
    });
  }
  return { agno, agbno, offset: (agno * sb.agblocks + agbno) * sb.blockSize };
}

/** Reasons not to trust the free-space btrees, found before walking them. */
async function doubts(
  source: BlockSource,
  sector: Uint8Array,
  sb: Superblock,
  warnings: Warning[],
  signal: AbortSignal | undefined,
): Promise<DiskubeError[]> {
  const out: DiskubeError[] = [];
  if (!superblockCrcOk(sector, sb)) {
    out.push(
      new CorruptError('superblock checksum mismatch', {
        structure: SB,
        offset: 0xe0,
        reason: 'checksum',
      }),
    );
  }
  if (sb.version === 5 && (sb.featuresIncompat & INCOMPAT.needsrepair) !== 0) {
    out.push(
      new DirtyFilesystemError('xfs_repair must run first (NEEDSREPAIR is set)', {
        structure: SB,
        offset: 0xd8,
        reason: 'needs-repair',
      }),
    );
  }
  if (sb.logstart === 0) {
    warnings.push({
      code: 'external-log',
      message:
        'the log is on an external device: whether it needs recovery cannot be checked from the data device',
    });
    return out;
  }
  const log = logExtent(sb);
  const n = (sb.logblocks * sb.blockSize) / 512;
  const v2 = sb.version === 5 || (sb.versionnum & VERSION.logv2) !== 0;
  const state = await findLogState(
    (start, count) => readStructure(source, log.offset + start * 512, count * 512, 'XFS log'),
    n,
    v2,
    sb.uuid,
    log.offset,
    signal,
  );
  if (!state.clean) {
    out.push(
      new DirtyFilesystemError(
        `the log needs recovery (head at block ${state.head}, tail at ${state.tail}; not cleanly unmounted)`,
        { structure: 'XFS log', offset: log.offset + state.head * 512, reason: 'log-dirty' },
      ),
    );
  }
  return out;
}

/** True when AG block `bno` lies in one of the (sorted, disjoint) free extents. */
function isFree(free: FreeSpace, bno: number): boolean {
  let lo = 0;
  let hi = free.starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const s = free.starts[mid]!;
    if (bno < s) hi = mid - 1;
    else if (bno >= s + free.counts[mid]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** True when two walks found the same extents (the cntbt's in size order). */
function sameExtents(byBlock: FreeSpace, bySize: FreeSpace): boolean {
  const n = byBlock.starts.length;
  if (bySize.starts.length !== n) return false;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => bySize.starts[a]! - bySize.starts[b]!,
  );
  for (let i = 0; i < n; i++) {
    const j = order[i]!;
    if (bySize.starts[j] !== byBlock.starts[i] || bySize.counts[j] !== byBlock.counts[i])
      return false;
  }
  return true;
}

/** Verify AG `agno`'s headers and free-space btree; returns its free extents. */
async function scanAg(
  source: BlockSource,
  sb: Superblock,
  agno: number,
  maxLevels: number,
  warnings: Warning[],
  signal: AbortSignal | undefined,
): Promise<FreeSpace> {
  const base = agOffset(sb, agno);
  const length = agLength(sb, agno);
  // Sector 0 superblock (copy), 1 AGF, 2 AGI, 3 AGFL.
  const headers = await readStructure(source, base, 4 * sb.sectsize, `XFS AG ${agno} headers`);
  const agfAt = sb.sectsize;
  const agf = parseAgf(
    headers.subarray(agfAt, agfAt + sb.sectsize),
    base + agfAt,
    sb,
    agno,
    length,
    maxLevels,
  );
  const agflAt = 3 * sb.sectsize;
  const agfl = parseAgfl(
    headers.subarray(agflAt, agflAt + sb.sectsize),
    base + agflAt,
    sb,
    agno,
    length,
    agf,
  );
  if (agfl === null) {
    warnings.push({
      code: 'agfl-needs-reset',
      message: `AG ${agno}'s free list window (first ${agf.flfirst}, last ${agf.fllast}, count ${agf.flcount}, size ${agflSize(sb)}) is inconsistent; its blocks are in no btree and are kept`,
      offset: base + agfAt + 0x28,
    });
  }
  const readBlock = async (agbno: number) => {
    const offset = base + agbno * sb.blockSize;
    const bytes = await readStructure(
      source,
      offset,
      sb.blockSize,
      `XFS btree block ${agno}/${agbno}`,
    );
    return { bytes, offset };
  };
  const free = await walkBnoBtree(readBlock, sb, agno, length, agf.bnoRoot, agf.bnoLevel, signal);
  const where = { structure: `XFS AGF ${agno}`, offset: base + agfAt };
  // The by-size btree must hold exactly the same extents: a bnobt record claiming used blocks as
  // free would have to be forged in both trees (and in agf_freeblks) to go unnoticed.
  const bySize = await walkBnoBtree(
    readBlock,
    sb,
    agno,
    length,
    agf.cntRoot,
    agf.cntLevel,
    signal,
    'cnt',
  );
  if (!sameExtents(free, bySize)) {
    throw new CorruptError('the free-space btrees by block and by size disagree', {
      ...where,
      offset: where.offset + 0x14,
      reason: 'btree-mismatch',
    });
  }
  let total = 0;
  for (const c of free.counts) total += c;
  if (total !== agf.freeblks) {
    throw new CorruptError(`the bnobt lists ${total} free blocks, the AGF says ${agf.freeblks}`, {
      ...where,
      offset: where.offset + 0x34,
      reason: 'free-count',
    });
  }
  // The AG headers, the btree's own blocks and the free list can never be free space.
  const headerBlocks = Math.ceil((4 * sb.sectsize) / sb.blockSize);
  if (free.starts.length > 0 && free.starts[0]! < headerBlocks) {
    throw new CorruptError(`free extent at block ${free.starts[0]} covers the AG headers`, {
      ...where,
      reason: 'overlap',
    });
  }
  for (const [what, blocks] of [
    ['bnobt block', free.nodes],
    ['cntbt block', bySize.nodes],
    ['free-list block', agfl ?? []],
  ] as const) {
    for (const bno of blocks) {
      if (isFree(free, bno)) {
        throw new CorruptError(`${what} ${bno} is listed as free space`, {
          ...where,
          reason: 'overlap',
        });
      }
    }
  }
  return free;
}

/**
 * The driver for XFS (v4 and v5). What is used: every block the free-space btree by block number
 * of its AG does not list as free. See FORMAT.md for the fields relied on and the README for the
 * policy on dirty logs, checksum mismatches and the tail after the filesystem.
 */
export const xfsDriver: FilesystemDriver = {
  name: 'xfs',

  async probe(source: BlockSource): Promise<ProbeResult | null> {
    try {
      if (source.size < 512) return null;
      const bytes = new Uint8Array(512);
      await source.read(0, bytes);
      if (!hasXfsMagic(bytes)) return null;
      const sb = parseSuperblock(bytes);
      const result: ProbeResult = { filesystem: 'xfs', blockSize: sb.blockSize };
      if (sb.label !== '') result.label = sb.label;
      return result;
    } catch {
      return null;
    }
  },

  async usedBlocks(source: BlockSource, options: UsedBlocksOptions = {}): Promise<UsedBlocks> {
    const { signal } = options;
    signal?.throwIfAborted();
    const { sector, sb } = await readSuperblock(source);
    const unknown = unknownFeatures(sb);
    if (unknown.length > 0) {
      throw new UnsupportedError(`unsupported features: ${unknown.join(', ')}`, {
        structure: SB,
        offset: sb.version === 5 ? 0xd4 : 0x64,
        reason: 'unknown-feature',
      });
    }
    if (sb.rblocks > 0) {
      // File data in the realtime subvolume lives on another device, and its allocation map is
      // the realtime bitmap inode, which this driver does not read.
      throw new UnsupportedError('a realtime subvolume is not supported', {
        structure: SB,
        offset: 0x10,
        reason: 'realtime',
      });
    }
    const blockCount = sb.dblocks;
    const tailOffset = blockCount * sb.blockSize;
    if (tailOffset > source.size) {
      throw new CorruptError(
        `the filesystem needs ${tailOffset} bytes but the source has ${source.size}`,
        {
          structure: SB,
          offset: 0x08,
          reason: 'truncated',
        },
      );
    }
    const warnings: Warning[] = [];
    const result = (used: Bitmap, doubt: boolean): UsedBlocks => ({
      filesystem: 'xfs',
      blockSize: sb.blockSize,
      blockCount,
      used,
      tail: {
        offset: tailOffset,
        length: source.size - tailOffset,
        used: doubt,
        reason: doubt ? 'kept: filesystem metadata in doubt' : 'after end of filesystem',
      },
      warnings,
      facts: facts(sb),
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
      return result(new Bitmap(blockCount).setAll(), true);
    };
    const absorbable = (e: unknown): e is DiskubeError =>
      DiskubeError.isInstance(e) && (e.code === 'CORRUPT' || e.code === 'DIRTY');

    let used: Bitmap;
    try {
      const distrust = await doubts(source, sector, sb, warnings, signal);
      if (distrust.length > 0) {
        if (!options.assumeUsedOnDoubt) throw distrust[0];
        return allUsed(distrust);
      }
      used = new Bitmap(blockCount).setAll();
      const maxLevels = allocMaxLevels(sb);
      const log = sb.logstart !== 0 ? logExtent(sb) : null;
      for (let agno = 0; agno < sb.agcount; agno++) {
        signal?.throwIfAborted();
        const free = await scanAg(source, sb, agno, maxLevels, warnings, signal);
        const first = agno * sb.agblocks;
        for (let i = 0; i < free.starts.length; i++)
          used.clearRange(first + free.starts[i]!, free.counts[i]!);
        if (log && log.agno === agno) {
          // The internal log is allocated space: it must not be free in its AG's btree.
          for (let i = 0; i < free.starts.length; i++) {
            const s = free.starts[i]!;
            if (s < log.agbno + sb.logblocks && s + free.counts[i]! > log.agbno) {
              throw new CorruptError(`free extent at block ${s} overlaps the log`, {
                structure: `XFS AGF ${agno}`,
                offset: agOffset(sb, agno) + sb.sectsize,
                reason: 'overlap',
              });
            }
          }
        }
      }
    } catch (e) {
      if (options.assumeUsedOnDoubt && absorbable(e)) return allUsed([e]);
      throw e;
    }
    if (tailOffset + sb.blockSize <= source.size) {
      warnings.push({
        code: 'tail-after-filesystem',
        message: `${source.size - tailOffset} bytes after the end of the filesystem are not part of it and are not kept`,
        offset: tailOffset,
      });
    }
    return result(used, false);
  },
};
