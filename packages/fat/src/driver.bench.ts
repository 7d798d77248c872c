import { openFileSource } from '@diskube/core/node';
import { buildImage } from '@diskube/mkimage';
import { bench, describe } from 'vitest';
import { fatDriver } from './driver.js';

// usedBlocks on a 32 GiB sparse FAT32 with 4 KiB clusters (8.4 M clusters, two 32 MiB FATs):
// the work is reading the FATs, so it grows with the cluster count, not with the data.
const { image } = await buildImage(
  'disk 32G\n  filesystem fat fat=32 cluster=4K\n    files /d 200 64K\n    file /big 100M zeros\n',
);

describe('fat usedBlocks', () => {
  bench(
    '32 GiB sparse FAT32, 4 KiB clusters',
    async () => {
      const source = await openFileSource(image);
      try {
        const result = await fatDriver.usedBlocks(source);
        if (result.used.count() === 0) throw new Error('nothing used?');
      } finally {
        await source.close();
      }
    },
    { iterations: 5, warmupIterations: 1 },
  );
});
