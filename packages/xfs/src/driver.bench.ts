import { openFileSource } from '@diskube/core/node';
import { bench, describe } from 'vitest';
// @ts-expect-error: plain ESM helper shared with bench/peak.mjs, no type declarations.
import { benchImage } from '../bench/image.mjs';
import { xfsDriver } from './driver.js';

// usedBlocks on a 1 TiB sparse XFS (see bench/image.mjs). Targets: at most 1 s and 100 MiB peak;
// peak RSS is measured outside vitest by bench/peak.mjs (see README).
const image: string = benchImage();

describe('xfs usedBlocks', () => {
  bench(
    '1 TiB sparse XFS, 4 AGs',
    async () => {
      const source = await openFileSource(image);
      try {
        const result = await xfsDriver.usedBlocks(source);
        if (result.used.count() === 0) throw new Error('nothing used?');
      } finally {
        await source.close();
      }
    },
    { iterations: 10, warmupIterations: 2 },
  );
});
