import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  type CrossCheckReport,
  readBytes,
  type Warning,
} from '@diskube/core';
import type { BootSector } from './boot-sector.js';
import { parseDirectory } from './directory.js';
import { entryOffset, entryReader, MARK_FROM } from './fat-table.js';

/** Owners of missing clusters named in the report and in warnings (the count is exact). */
const MAX_LISTED = 16;

/**
 * The `crossCheck` walk, as fsck.fat's first pass does it: from the root directory, read every
 * directory, follow the cluster chain of every file and directory through the FAT, and prove
 * each cluster of a chain is in `clusters` (bit `c − 2` for cluster `c`). A chain that runs into
 * a free entry references that cluster although the FAT calls it free: it is set, counted and
 * named by its path. Directory clusters already read are not read again (no loops); every chain
 * stops after `clusterCount` steps. Counts are in map blocks of `blockSize` bytes.
 *
 * The FAT read is the active one (FAT32 with mirroring off) or the first, held as one entry
 * array: 4 bytes per cluster, which a cross-check (opt-in, "reads all file metadata") may cost.
 */
export async function crossCheckWalk(
  source: BlockSource,
  bs: BootSector,
  clusters: Bitmap,
  blockSize: number,
  signal: AbortSignal | undefined,
): Promise<{ report: CrossCheckReport; warnings: Warning[] }> {
  const type = bs.fatType;
  const copy = bs.mirroring ? 0 : Math.min(bs.activeFat, bs.fatCount - 1);
  const fatAt = (bs.reservedSectors + copy * bs.fatSectors) * bs.bytesPerSector;
  const entries = bs.clusterCount + 2;
  const fatBytes = await readBytes(source, fatAt, entryOffset(type, entries + (entries % 2)));
  const entry = entryReader(fatBytes, type, 0);
  const last = bs.clusterCount + 1;
  const marks = MARK_FROM[type];
  const perCluster = bs.clusterSize / blockSize;
  const dataBlock = (bs.firstDataSector * bs.bytesPerSector) / blockSize;
  const dataAt = bs.firstDataSector * bs.bytesPerSector;

  const report: CrossCheckReport = {
    referencedBlocks: 0,
    objects: 0,
    missingBlocks: 0,
    missing: [],
  };
  const visit = (c: number, owner: string): void => {
    report.referencedBlocks += perCluster;
    if (clusters.get(c - 2)) return;
    clusters.set(c - 2);
    report.missingBlocks += perCluster;
    const block = dataBlock + (c - 2) * perCluster;
    const prev = report.missing[report.missing.length - 1];
    if (prev && prev.owner === owner && prev.block + prev.count === block) prev.count += perCluster;
    else if (report.missing.length < MAX_LISTED)
      report.missing.push({ owner, block, count: perCluster });
  };

  /** The clusters of the chain from `first`, each visited. */
  const chain = (first: number, owner: string, at: number): number[] => {
    if (first < 2 || first > last) {
      throw new CorruptError(`${owner} starts at cluster ${first}, outside 2…${last}`, {
        structure: 'FAT directory entry',
        offset: at,
        reason: 'bad-start-cluster',
      });
    }
    const out: number[] = [];
    for (let c = first, steps = 0; steps < bs.clusterCount; steps++) {
      visit(c, owner);
      out.push(c);
      const next = entry(c);
      // A free entry ends the chain where fsck.fat would; a mark ends it as it should.
      if (next === 0 || next >= marks) break;
      c = next;
    }
    return out;
  };

  const readDirs = new Bitmap(bs.clusterCount);
  const queue: Array<{ path: string; first: number; at: number }> = [
    { path: '', first: type === 32 ? bs.rootCluster : 0, at: 0x2c },
  ];
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const dir = queue.shift()!;
    report.objects++;
    // The FAT12/16 root directory is its own region; every other directory is a chain.
    const parts: Array<{ bytes: Uint8Array; at: number }> = [];
    if (dir.first === 0) {
      const at = (bs.reservedSectors + bs.fatCount * bs.fatSectors) * bs.bytesPerSector;
      parts.push({ bytes: await readBytes(source, at, bs.rootDirSectors * bs.bytesPerSector), at });
    } else {
      for (const c of chain(dir.first, dir.path || '/', dir.at)) {
        if (readDirs.get(c - 2)) break;
        readDirs.set(c - 2);
        const at = dataAt + (c - 2) * bs.clusterSize;
        parts.push({ bytes: await readBytes(source, at, bs.clusterSize), at });
      }
    }
    for (const { bytes, at } of parts) {
      const { entries, done } = parseDirectory(bytes, type === 32, at);
      for (const e of entries) {
        const path = `${dir.path}/${e.name}`;
        if (e.directory) {
          if (e.firstCluster !== 0) queue.push({ path, first: e.firstCluster, at: e.offset });
        } else {
          report.objects++;
          if (e.firstCluster !== 0) chain(e.firstCluster, path, e.offset);
        }
      }
      if (done) break;
    }
  }

  const warnings: Warning[] = report.missing.map((m) => ({
    code: 'referenced-free',
    message: `${m.owner} uses ${m.count} blocks at block ${m.block} that the FAT marks free; they are kept`,
    offset: m.block * blockSize,
  }));
  const listed = report.missing.reduce((n, m) => n + m.count, 0);
  if (report.missingBlocks > listed) {
    warnings.push({
      code: 'referenced-free',
      message: `${report.missingBlocks - listed} more referenced blocks were free in the FAT; they are kept`,
    });
  }
  return { report, warnings };
}
