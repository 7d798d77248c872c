import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { NTFS_TOOLS, type NtfsImageSpec } from './images.test-support.js';
import { expectMatchesOracles } from './oracle.test-support.js';

// The two slowest images to build, in their own file so vitest builds them in parallel with the rest.
const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');
const MiB = 1 << 20;

const MANY: NtfsImageSpec = {
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
};

const FRAGMENTED: NtfsImageSpec = {
  size: 8 * MiB,
  cluster: 512,
  steps: [
    { op: 'files', prefix: 'a', count: 1200, sizes: [1024] },
    { op: 'fill', prefix: 'fill' },
    { op: 'punch', prefix: 'a', count: 1200, every: 2 },
    { op: 'files', prefix: 't', count: 3000, sizes: [3], untilFull: true },
  ],
};

describe.skipIf(!tools)('a growing $MFT', () => {
  it('2000 files, deleted and preallocated files: exact match with ntfs-3g and partclone', async () => {
    const result = await expectMatchesOracles(MANY);
    expect(result.facts.mftRecords).toBeGreaterThan(2000);
  });

  it('$MFT grown into punched holes of a full volume: fragmented, exact match', async () => {
    const result = await expectMatchesOracles(FRAGMENTED);
    expect(result.facts.mftFragments).toBeGreaterThan(20);
  });
});
