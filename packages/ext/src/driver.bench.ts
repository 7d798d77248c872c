import { openFileSource } from '@diskube/core/node';
import { bench, describe } from 'vitest';
// @ts-expect-error: plain ESM helper shared with bench/peak.mjs, no type declarations.
import { benchImage } from '../bench/image.mjs';
import { extDriver } from './driver.js';

// usedBlocks on a 1 TiB sparse ext4 (see bench/image.mjs). Targets: under 2 s wall and under
// 200 MiB peak; peak RSS is measured outside vitest by bench/peak.mjs (see README).
const image: string = await benchImage();

describe('ext usedBlocks', () => {
  bench(
    '1 TiB sparse ext4, 8192 groups',
    async () => {
      const source = await openFileSource(image);
      try {
        const result = await extDriver.usedBlocks(source);
        if (result.used.count() === 0) throw new Error('nothing used?');
      } finally {
        await source.close();
      }
    },
    { iterations: 10, warmupIterations: 2 },
  );
});
