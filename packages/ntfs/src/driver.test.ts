import { readFileSync } from 'node:fs';
import { type BlockSource, memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import {
  buildNtfsImage,
  type NtfsImageSpec,
  ntfs3gBitmap,
  ntfsToolsAvailable,
  partcloneUsed,
} from './test-images.js';

const tools = ntfsToolsAvailable();

const MiB = 1 << 20;

/** The feature matrix: cluster sizes 512 B … 2 MiB, a 4 KiB-sector volume, a growing $MFT. */
const MATRIX: Record<string, NtfsImageSpec> = {
  'cluster 512 B': {
    size: 8 * MiB,
    cluster: 512,
    label: 'c512',
    steps: [
      { op: 'file', name: 'big.bin', size: 1_500_000 },
      { op: 'files', prefix: 'f', count: 60, sizes: [100, 1500, 5000] },
      { op: 'truncate', name: 'f4', size: 0 },
    ],
  },
  'cluster 4 KiB, 2000 files (grown $MFT, deleted and preallocated files)': {
    size: 48 * MiB,
    cluster: 4096,
    label: 'many',
    steps: [
      { op: 'files', prefix: 'small', count: 2000, sizes: [100, 900, 3000, 9000] },
      { op: 'file', name: 'stale.bin', size: 3 * MiB },
      { op: 'truncate', name: 'stale.bin', size: 0 },
      { op: 'file', name: 'half.bin', size: 2 * MiB },
      { op: 'truncate', name: 'half.bin', size: 700_000 },
      { op: 'file', name: 'prealloc.bin', size: 10 },
      { op: 'fallocate', name: 'prealloc.bin', size: 5 * MiB },
    ],
  },
  'cluster 64 KiB': {
    size: 64 * MiB,
    cluster: 65536,
    steps: [
      { op: 'file', name: 'a.bin', size: 5 * MiB },
      { op: 'files', prefix: 'f', count: 40, sizes: [10, 70_000, 200_000] },
    ],
  },
  'cluster 2 MiB': {
    size: 96 * MiB,
    cluster: 2 * MiB,
    steps: [
      { op: 'file', name: 'a.bin', size: 9 * MiB },
      { op: 'files', prefix: 'f', count: 10, sizes: [10, 3 * MiB] },
    ],
  },
  'sector 4 KiB': {
    size: 32 * MiB,
    cluster: 4096,
    sectorSize: 4096,
    steps: [{ op: 'files', prefix: 'f', count: 30, sizes: [5000, 40_000] }],
  },
  'fragmented $MFT (volume filled, then holes punched, then $MFT grown into them)': {
    size: 8 * MiB,
    cluster: 512,
    steps: [
      { op: 'files', prefix: 'a', count: 1200, sizes: [1024] },
      { op: 'fill', prefix: 'fill' },
      { op: 'punch', prefix: 'a', count: 1200, every: 2 },
      { op: 'files', prefix: 't', count: 3000, sizes: [3], untilFull: true },
    ],
  },
};

function load(spec: NtfsImageSpec): { path: string; image: Uint8Array; source: BlockSource } {
  const path = buildNtfsImage(spec);
  const image = new Uint8Array(readFileSync(path));
  return { path, image, source: memorySource(image) };
}

describe.skipIf(!tools)('ntfsDriver against ntfs-3g and partclone', () => {
  for (const [name, spec] of Object.entries(MATRIX)) {
    it(`${name}: used clusters equal ntfs-3g's $Bitmap and partclone's domain log exactly`, async () => {
      const { path, image, source } = load(spec);
      const probe = await ntfsDriver.probe(source);
      expect(probe).toEqual({
        filesystem: 'ntfs',
        blockSize: spec.cluster,
        ...(spec.label ? { label: spec.label } : {}),
      });
      const result = await ntfsDriver.usedBlocks(source);
      const sector = spec.sectorSize ?? 512;
      // mkntfs keeps the last sector for the backup boot sector: clusters = floor((size − 1 sector) / cluster).
      expect(result.blockSize).toBe(spec.cluster);
      expect(result.blockCount).toBe(Math.floor((spec.size - sector) / spec.cluster));
      expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
      expect(result.used.equals(partcloneUsed(path, result.blockSize, result.blockCount))).toBe(
        true,
      );
      expect(result.warnings).toEqual([]);
      // The only bytes kept beyond the used clusters: the tail, which holds the backup boot sector.
      expect(result.tail).toMatchObject({
        offset: result.blockCount * spec.cluster,
        length: spec.size - result.blockCount * spec.cluster,
        used: true,
      });
      expect(result.tail.length).toBeGreaterThanOrEqual(sector);
      expect(result.tail.length).toBeLessThanOrEqual(spec.cluster + sector);
      const backup = image.subarray(spec.size - sector, spec.size - sector + 512);
      expect(backup).toEqual(image.subarray(0, 512));
      expect(result.facts).toMatchObject({
        clusterSize: spec.cluster,
        version: '3.1',
        logFile: 'empty',
        hiberfile: 'absent',
      });
    });
  }

  it('grows $MFT with thousands of files and fragments it when the volume is full', async () => {
    const many = await ntfsDriver.usedBlocks(
      load(MATRIX['cluster 4 KiB, 2000 files (grown $MFT, deleted and preallocated files)']!)
        .source,
    );
    expect(many.facts.mftRecords).toBeGreaterThan(2000);
    const fragmented = await ntfsDriver.usedBlocks(
      load(
        MATRIX['fragmented $MFT (volume filled, then holes punched, then $MFT grown into them)']!,
      ).source,
    );
    expect(fragmented.facts.mftFragments).toBeGreaterThan(20);
  });

  it('frees the clusters of a truncated ("deleted") file although its stale bytes remain', async () => {
    const base: NtfsImageSpec = {
      size: 16 * MiB,
      cluster: 4096,
      steps: [{ op: 'file', name: 'gone.bin', size: 2 * MiB }],
    };
    const kept = await ntfsDriver.usedBlocks(load(base).source);
    const deleted = await ntfsDriver.usedBlocks(
      load({ ...base, steps: [...base.steps!, { op: 'truncate', name: 'gone.bin', size: 0 }] })
        .source,
    );
    expect(kept.used.count() - deleted.used.count()).toBe((2 * MiB) / 4096);
  });

  it('keeps clusters allocated by fallocate beyond the initialized size', async () => {
    const base: NtfsImageSpec = {
      size: 16 * MiB,
      cluster: 4096,
      steps: [{ op: 'file', name: 'p.bin', size: 1 }],
    };
    const before = await ntfsDriver.usedBlocks(load(base).source);
    const after = await ntfsDriver.usedBlocks(
      load({ ...base, steps: [...base.steps!, { op: 'fallocate', name: 'p.bin', size: 4 * MiB }] })
        .source,
    );
    expect(after.used.count() - before.used.count()).toBe((4 * MiB) / 4096);
  });
});
