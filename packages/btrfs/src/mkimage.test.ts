import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sliceSource } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { bitmapDifferences } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { buildAndVerify, extract, requireTools, scratchDir } from '@diskube/mkimage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { btrfsDriver } from './driver.js';
import { progsView } from './images.test-support.js';

// btrfs through the mkimage DSL (apps/mkimage/src/fs/btrfs.ts): a partitioned disk built by
// mkfs.btrfs --rootdir, checked by `btrfs check --readonly` and by reading every manifest file
// back with `btrfs restore`; then the driver through a slice of the disk against btrfs-progs.

const CACHE = fileURLToPath(
  new URL('../../../node_modules/.cache/diskube-mkimage', import.meta.url),
);

const tools = requireTools(['mkfs.btrfs', 'btrfs', 'sgdisk'], 'btrfs DSL tests');

describe.runIf(tools)('btrfs images from the mkimage DSL', () => {
  let work: string;
  beforeAll(async () => {
    work = await scratchDir();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('GPT partition: check clean, files intact, used map equals btrfs-progs', async () => {
    const spec = `disk 140M gpt
  partition 1M raw
  partition rest btrfs metadata=single label=dsl
    prefill random seed=21
    file /d/f0 300K random seed=1
    file /d/f2 1200K random seed=3
    files /many 50 small
    append /d/f0 50K random seed=4
    overwrite /d/f2 4096 8K random seed=5
    truncate /d/f2 100K
    file /t "inline text"
`;
    const { image, manifest } = await buildAndVerify(spec, CACHE, work);
    const p = manifest.partitions.find((x) => x.fs === 'btrfs')!;
    expect(p.files.length).toBe(53);
    const source = await openFileSource(image);
    const result = await btrfsDriver
      .usedBlocks(sliceSource(source, p.offset, p.size))
      .finally(() => source.close());
    expect(result.facts.label).toBe('dsl');
    const part = await extract(image, p, work);
    try {
      const progs = progsView(part, result.blockSize, result.blockCount);
      expect(bitmapDifferences(result.used, progs)).toEqual({ missing: [], extra: [] });
    } finally {
      await rm(part, { force: true });
    }
  });

  it('content mkfs.btrfs cannot fit is a BuildError, not a silently grown filesystem', async () => {
    // With --rootdir mkfs.btrfs grows the scratch file (here to ~229 MiB) instead of failing.
    const spec = `disk 128M
  filesystem btrfs metadata=dup data=dup nodesize=4K features=^skinny-metadata
    files /s 400 small seed=7
    files /m 150 12K seed=8
    file /big 2M random seed=9
`;
    await expect(buildImage(spec, { cacheDir: CACHE })).rejects.toMatchObject({
      code: 'build-failed',
      message: expect.stringContaining('make it bigger'),
    });
  });

  it('refuses what needs a mounted filesystem with a SpecError at its line', async () => {
    for (const [line, content] of [
      [4, 'file /a 10K random\n    delete /a'],
      [3, 'file /a 100K random fragments=3'],
      [4, 'file /a 10K random\n    dirty'],
    ] as const) {
      await expect(
        buildImage(`disk 128M\n  filesystem btrfs\n    ${content}\n`, { cacheDir: CACHE }),
      ).rejects.toMatchObject({ code: 'spec', line });
    }
  });
});
