import { openFileSource } from '@diskube/core/node';
import { bench, describe } from 'vitest';
// @ts-expect-error: plain ESM helper shared with bench/peak.mjs, no type declarations.
import { benchImage } from '../bench/image.mjs';
import { btrfsDriver } from './driver.js';

// usedBlocks on a 1 TiB sparse btrfs (see bench/image.mjs); peak RSS is measured outside vitest
// by bench/peak.mjs (see README).
const image: string = benchImage();

describe('btrfs usedBlocks', () => {
  bench(
    '1 TiB sparse btrfs, 3000 small files',
    async () => {
      const source = await openFileSource(image);
      try {
        const result = await btrfsDriver.usedBlocks(source);
        if (result.used.count() === 0) throw new Error('nothing used?');
      } finally {
        await source.close();
      }
    },
    { iterations: 10, warmupIterations: 2 },
  );
});
