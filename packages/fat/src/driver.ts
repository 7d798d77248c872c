import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  type CrossCheckReport,
  DirtyFilesystemError,
  type DiskubeError,
  type FilesystemDriver,
  type ProbeResult,
  readBytes,
  UnsupportedError,
  type UsedBlocks,
  type UsedBlocksOptions,
  type Warning,
} from '@diskube/core';
import {
  BOOT_SECTOR_SIZE,
  type BootSector,
  type FatType,
  mapBlockSize,
  parseBootSector,
  truncatedError,
} from './boot-sector.js';
import { crossCheckWalk } from './cross-check.js';
import { entryOffset, fatEntry, markAllocated, volumeState } from './fat-table.js';
import { parseFsInfo } from './fsinfo.js';

/** FAT bytes read at once per copy (FAT12/16 FATs are at most 128 KiB and read whole). */
const CHUNK_BYTES = 4 << 20;

/** `fat12`, `fat16` or `fat32`, the type by cluster count. */
const fsName = (bs: BootSector): string => `fat${bs.fatType}`;

function facts(bs: BootSector, freeHint: number | undefined): UsedBlocks['facts'] {
  const out: UsedBlocks['facts'] = {
    fatType: `FAT${bs.fatType}`,
    sectorSize: bs.bytesPerSector,
    clusterSize: bs.clusterSize,
    clusters: bs.clusterCount,
    fats: bs.fatCount,
    reservedSectors: bs.reservedSectors,
    dataStart: bs.firstDataSector * bs.bytesPerSector,
  };
  if (bs.label !== '') out.label = bs.label;
  if (bs.volumeId !== undefined) {
    const hex = bs.volumeId.toString(16).toUpperCase().padStart(8, '0');
    out.volumeId = `${hex.slice(0, 4)}-${hex.slice(4)}`;
  }
  if (bs.fatType === 32) {
    out.rootCluster = bs.rootCluster;
    out.mirroring = bs.mirroring;
    if (freeHint !== undefined) out.freeClustersHint = freeHint;
  } else out.rootEntries = bs.rootEntries;
  return out;
}

/** Byte offset of FAT copy `i`. */
const fatStart = (bs: BootSector, i: number): number =>
  (bs.reservedSectors + i * bs.fatSectors) * bs.bytesPerSector;

/**
 * Reasons not to trust the FAT: the boot sector's dirty flag (set by Linux and Windows NT while
 * mounted) and FAT[1]'s clean-shutdown bit (Windows 9x/ME and later on FAT16/32), in each copy.
 */
async function doubts(
  source: BlockSource,
  bs: BootSector,
  warnings: Warning[],
): Promise<DiskubeError[]> {
  const out: DiskubeError[] = [];
  if (bs.dirtyFlag) {
    out.push(
      new DirtyFilesystemError('the volume is marked dirty (mounted, or not cleanly unmounted)', {
        structure: 'FAT boot sector',
        offset: bs.fatType === 32 ? 0x41 : 0x25,
        reason: 'volume-dirty',
      }),
    );
  }
  if (bs.fatType === 12) return out;
  const width = bs.fatType / 8;
  for (let i = 0; i < bs.fatCount; i++) {
    const at = fatStart(bs, i) + width;
    const entry1 = fatEntry(await readBytes(source, at, width), bs.fatType, 1, 1);
    const state = volumeState(bs.fatType, entry1);
    if (!state.clean) {
      out.push(
        new DirtyFilesystemError(`FAT ${i + 1} says the volume was not cleanly shut down`, {
          structure: 'FAT',
          offset: at,
          reason: 'not-clean',
        }),
      );
      break;
    }
    if (state.hardErrors && !warnings.some((w) => w.code === 'hard-errors')) {
      warnings.push({
        code: 'hard-errors',
        message: `FAT ${i + 1} records disk I/O errors from the last mount; the map is still read from the FAT`,
        offset: at,
      });
    }
  }
  return out;
}

/**
 * Reads every FAT copy in step, chunk by chunk, and marks each cluster that any copy says is
 * in use: a copy lagging behind another must not drop a cluster. Copies that differ while
 * mirroring is on get a warning.
 */
async function scanFats(
  source: BlockSource,
  bs: BootSector,
  clusters: Bitmap,
  warnings: Warning[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const type = bs.fatType;
  const entries = bs.clusterCount + 2;
  // FAT12 packs two entries in three bytes: read it whole (at most 6 KiB).
  const perChunk = type === 12 ? entries : Math.floor(CHUNK_BYTES / (type / 8));
  let warned = false;
  for (let first = 0; first < entries; first += perChunk) {
    signal?.throwIfAborted();
    const end = Math.min(entries, first + perChunk);
    const from = entryOffset(type, first);
    const length = type === 12 ? Math.ceil((end * 3) / 2) - from : (end - first) * (type / 8);
    // The copies' chunks are read together: the reads overlap instead of queueing.
    const copies = await Promise.all(
      Array.from({ length: bs.fatCount }, (_, i) =>
        readBytes(source, fatStart(bs, i) + from, length),
      ),
    );
    let reference: Uint8Array | undefined;
    for (const [i, bytes] of copies.entries()) {
      const at = fatStart(bs, i) + from;
      markAllocated(bytes, type, first, first, end, bs.clusterCount, clusters, fatStart(bs, i));
      if (reference === undefined) reference = bytes;
      else if (!warned && bs.mirroring && !sameEntries(reference, bytes, first, type)) {
        warned = true;
        warnings.push({
          code: 'fat-copies-differ',
          message: `FAT ${i + 1} differs from FAT 1; clusters either marks in use are kept`,
          offset: at,
        });
      }
    }
  }
}

/** Equal bytes, ignoring FAT[0] and FAT[1] (media byte and volume state bits). */
function sameEntries(a: Uint8Array, b: Uint8Array, first: number, type: FatType): boolean {
  let i = first === 0 ? entryOffset(type, 2) : 0;
  // Four bytes at a time where both are aligned (they are: fresh buffers), then the rest.
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const words = Math.floor(a.length / 4);
    const wa = new Uint32Array(a.buffer, a.byteOffset, words);
    const wb = new Uint32Array(b.buffer, b.byteOffset, words);
    for (let w = Math.ceil(i / 4); w < words; w++) if (wa[w] !== wb[w]) return false;
    for (let k = i; k < Math.min(a.length, Math.ceil(i / 4) * 4); k++)
      if (a[k] !== b[k]) return false;
    i = words * 4;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The driver for FAT12, FAT16 and FAT32. See FORMAT.md for the fields relied on and the README
 * for the policy on dirty volumes, differing FAT copies and the tail after the last cluster.
 */
export const fatDriver: FilesystemDriver = {
  name: 'fat',

  async probe(source: BlockSource): Promise<ProbeResult | null> {
    try {
      if (source.size < BOOT_SECTOR_SIZE) return null;
      const bytes = new Uint8Array(BOOT_SECTOR_SIZE);
      await source.read(0, bytes);
      try {
        const bs = parseBootSector(bytes);
        const result: ProbeResult = { filesystem: fsName(bs), blockSize: mapBlockSize(bs) };
        if (bs.label !== '') result.label = bs.label;
        return result;
      } catch (e) {
        // A FAT volume this driver will not read (a layout that contradicts the cluster count,
        // an unknown FAT32 version) is still FAT: claim it, so usedBlocks says why.
        if (!UnsupportedError.isInstance(e)) return null;
        return { filesystem: 'fat', blockSize: bytes[0x0b]! | (bytes[0x0c]! << 8) };
      }
    } catch {
      return null;
    }
  },

  async usedBlocks(source: BlockSource, options: UsedBlocksOptions = {}): Promise<UsedBlocks> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (source.size < BOOT_SECTOR_SIZE) {
      throw new CorruptError(`a ${source.size}-byte source cannot hold a FAT boot sector`, {
        structure: 'FAT boot sector',
        offset: 0,
        reason: 'truncated',
      });
    }
    const bs = parseBootSector(await readBytes(source, 0, BOOT_SECTOR_SIZE));
    // Every read below lies inside the volume: checked once here.
    if (bs.totalSectors * bs.bytesPerSector > source.size) throw truncatedError(bs, source.size, 0);

    const blockSize = mapBlockSize(bs);
    const dataStart = bs.firstDataSector * bs.bytesPerSector;
    const blockCount = (dataStart + bs.clusterCount * bs.clusterSize) / blockSize;
    const tailOffset = blockCount * blockSize;
    const warnings: Warning[] = [];
    let freeHint: number | undefined;
    const result = (used: Bitmap, doubt: boolean): UsedBlocks => ({
      filesystem: fsName(bs),
      blockSize,
      blockCount,
      used,
      tail: {
        offset: tailOffset,
        length: source.size - tailOffset,
        // Sectors after the last whole cluster may hold anything a tool put there; they are few.
        used: true,
        reason: doubt ? 'kept: filesystem metadata in doubt' : 'after the last cluster, kept',
      },
      warnings,
      facts: facts(bs, freeHint),
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

    const distrust = await doubts(source, bs, warnings);
    if (distrust.length > 0) {
      if (!options.assumeUsedOnDoubt) throw distrust[0];
      return allUsed(distrust);
    }

    if (bs.fsInfoSector !== 0) {
      const at = bs.fsInfoSector * bs.bytesPerSector;
      const info = parseFsInfo(await readBytes(source, at, 512), at);
      if (info.valid) freeHint = info.freeCount;
      else {
        warnings.push({
          code: 'bad-fsinfo',
          message: 'the FSInfo sector has bad signatures (it only holds hints; the FAT is read)',
          offset: at,
        });
      }
    }

    const clusters = new Bitmap(bs.clusterCount);
    try {
      await scanFats(source, bs, clusters, warnings, signal);
    } catch (e) {
      if (options.assumeUsedOnDoubt && CorruptError.isInstance(e)) return allUsed([e]);
      throw e;
    }
    // The FAT32 root directory is kept even if its FAT entry were free.
    if (bs.fatType === 32) clusters.set(bs.rootCluster - 2);

    let crossCheck: CrossCheckReport | undefined;
    if (options.crossCheck) {
      try {
        const walk = await crossCheckWalk(source, bs, clusters, blockSize, signal);
        crossCheck = walk.report;
        warnings.push(...walk.warnings);
      } catch (e) {
        if (options.assumeUsedOnDoubt && CorruptError.isInstance(e)) return allUsed([e]);
        throw e;
      }
    }

    const used = new Bitmap(blockCount);
    // Boot sector, reserved sectors (FSInfo, backup boot sector), every FAT, the root directory.
    const dataBlock = dataStart / blockSize;
    used.setRange(0, dataBlock);
    const perCluster = bs.clusterSize / blockSize;
    clusters.forEachRun((start, length) => {
      used.setRange(dataBlock + start * perCluster, length * perCluster);
    });
    const out = result(used, false);
    if (crossCheck) out.crossCheck = crossCheck;
    return out;
  },
};
