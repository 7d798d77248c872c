import { statSync } from 'node:fs';
import { bitmapDifferences, bitmapOfRanges } from '@diskube/core/test';
import { partcloneDomain } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import {
  fatSpec,
  fsckSummary,
  image,
  mtoolsClusters,
  skipImages,
  usedClusters,
  usedOf,
} from './images.test-support.js';

const perClusterOf = (r: { blockSize: number; facts: Record<string, unknown> }): number =>
  (r.facts.clusterSize as number) / r.blockSize;

interface Case {
  spec: string;
  fatType: 12 | 16 | 32;
  sectorSize: number;
  clusterSize: number;
  /** The map's block size when the data region is not cluster-aligned (else the cluster size). */
  blockSize?: number;
}

/** The matrix: FAT12/16/32, 512 B and 4 KiB sectors, clusters from 512 B to 64 KiB. */
export const MATRIX: Record<string, Case> = {
  'FAT12, 1.44 MB floppy': {
    spec: fatSpec('1440K', 'fat=12'),
    fatType: 12,
    sectorSize: 512,
    clusterSize: 512,
  },
  'FAT12, 1.44 MB floppy, 2 KiB clusters: data region not cluster-aligned': {
    // 1 + 2 × 3 + 14 = 21 sectors before cluster 2: a 2 KiB grid from byte 0 would straddle
    // every cluster, so the map is in sectors, and the sectors after the last whole cluster
    // are the (kept) tail.
    spec: fatSpec('1440K', 'fat=12 cluster=2K'),
    fatType: 12,
    sectorSize: 512,
    clusterSize: 2048,
    blockSize: 512,
  },
  'FAT12, 4 KiB clusters': {
    spec: fatSpec('8M', 'fat=12 cluster=4K'),
    fatType: 12,
    sectorSize: 512,
    clusterSize: 4096,
  },
  'FAT16, 512 B clusters': {
    spec: fatSpec('24M', 'fat=16 cluster=512'),
    fatType: 16,
    sectorSize: 512,
    clusterSize: 512,
  },
  'FAT16, 2 KiB clusters': {
    spec: fatSpec('32M', 'fat=16 cluster=2K label=DATA'),
    fatType: 16,
    sectorSize: 512,
    clusterSize: 2048,
  },
  'FAT16, 64 KiB clusters (sparse)': {
    spec: fatSpec('300M', 'fat=16 cluster=64K', false),
    fatType: 16,
    sectorSize: 512,
    clusterSize: 65536,
  },
  'FAT32, 512 B clusters': {
    spec: fatSpec('40M', 'fat=32 cluster=512'),
    fatType: 32,
    sectorSize: 512,
    clusterSize: 512,
  },
  'FAT32, 4 KiB clusters': {
    spec: fatSpec('300M', 'fat=32 cluster=4K label=ESP', false),
    fatType: 32,
    sectorSize: 512,
    clusterSize: 4096,
  },
  'FAT32, 64 KiB clusters (sparse)': {
    spec: fatSpec('4200M', 'fat=32 cluster=64K', false),
    fatType: 32,
    sectorSize: 512,
    clusterSize: 65536,
  },
  'FAT32, 4 KiB sectors': {
    spec: fatSpec('300M', 'fat=32 sector=4K', false),
    fatType: 32,
    sectorSize: 4096,
    clusterSize: 4096,
  },
  'FAT16, 4 KiB sectors, 8 KiB clusters': {
    spec: fatSpec('64M', 'fat=16 sector=4K cluster=8K'),
    fatType: 16,
    sectorSize: 4096,
    clusterSize: 8192,
  },
};

describe.skipIf(skipImages)('fat usedBlocks against dosfstools and partclone', () => {
  it.each(Object.entries(MATRIX))('%s', async (_name, c) => {
    const path = await image(c.spec);
    const result = await usedOf(path);
    expect(result.filesystem).toBe(`fat${c.fatType}`);
    expect(result.facts).toMatchObject({
      fatType: `FAT${c.fatType}`,
      sectorSize: c.sectorSize,
      clusterSize: c.clusterSize,
    });
    expect(result.warnings).toEqual([]);
    const dataStart = result.facts.dataStart as number;
    const clusters = result.facts.clusters as number;
    // mkfs.fat aligns the data region to the cluster size (except on floppies), so the map is
    // in whole clusters; otherwise in the largest unit that divides both.
    expect(result.blockSize).toBe(c.blockSize ?? c.clusterSize);
    expect(dataStart % result.blockSize).toBe(0);
    if (c.blockSize) {
      expect(dataStart % c.clusterSize).not.toBe(0);
      expect(result.tail.length).toBeGreaterThan(0);
    }

    // fsck.fat: same FAT width, same cluster count, and as many clusters in use as files and
    // directories hold (it walks the directory tree; we read the FAT).
    const fsck = await fsckSummary(path);
    expect(fsck.bits).toBe(c.fatType);
    expect(fsck.clusters).toBe(clusters);
    const ours = usedClusters(result);
    expect(ours.count()).toBe(fsck.usedClusters);
    // mtools: exactly the clusters of every file's and directory's chain (mshowfat).
    const chains = await mtoolsClusters(path, clusters);
    expect(bitmapDifferences(ours, chains)).toEqual({ missing: [], extra: [] });
    // crossCheck: walking every directory and chain finds nothing the FAT calls free, and
    // references exactly mtools' clusters.
    const walked = await usedOf(path, { crossCheck: true });
    expect(walked.warnings).toEqual([]);
    expect(walked.used.equals(result.used)).toBe(true);
    expect(walked.crossCheck).toMatchObject({ missingBlocks: 0, missing: [] });
    expect(walked.crossCheck!.referencedBlocks / perClusterOf(result)).toBe(chains.count());
    // The boot area, FATs and root directory are kept whole.
    const metadataBlocks = dataStart / result.blockSize;
    expect(result.used.countRange(0, metadataBlocks)).toBe(metadataBlocks);

    // partclone.fat -D: exactly the same blocks on FAT16/32 (boot area, FATs, root directory,
    // allocated clusters). Not on FAT12: partclone 0.3.23 misdecodes the packed 12-bit entries
    // there, both copying free clusters and skipping allocated ones (runs of 13 of every 24
    // sectors), which the FAT, fsck.fat and mtools above all contradict.
    if (c.fatType !== 12) {
      const domain = await partcloneDomain('fat', path);
      const oracle = bitmapOfRanges(domain, result.blockSize, result.blockCount);
      expect(bitmapDifferences(result.used, oracle)).toEqual({ missing: [], extra: [] });
    }
    expect(result.tail).toMatchObject({ used: true });
    expect(result.tail.offset + result.tail.length).toBe(statSync(path).size);
  });
});
