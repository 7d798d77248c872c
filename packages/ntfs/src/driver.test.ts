import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { NTFS_TOOLS, type NtfsImageSpec } from './images.test-support.js';
import { expectMatchesOracles, load } from './oracle.test-support.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');

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
};

describe.skipIf(!tools)('ntfsDriver against ntfs-3g and partclone', () => {
  for (const [name, spec] of Object.entries(MATRIX)) {
    it(`${name}: used clusters equal ntfs-3g's $Bitmap and partclone's domain log exactly`, async () => {
      await expectMatchesOracles(spec);
    });
  }

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
