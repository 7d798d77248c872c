// Peak memory and wall time of one usedBlocks call on the 1 TiB benchmark image, outside vitest.
// After `pnpm build`:
//   /usr/bin/time -v node bench/peak.mjs [image]
import { openFileSource } from '@diskube/core/node';
import { btrfsDriver } from '../dist/index.js';
import { benchImage } from './image.mjs';

const image = process.argv[2] ?? benchImage();
const source = await openFileSource(image);
const start = performance.now();
const result = await btrfsDriver.usedBlocks(source);
const ms = performance.now() - start;
await source.close();
console.log(
  JSON.stringify({
    image,
    ms: Math.round(ms),
    blockSize: result.blockSize,
    blockCount: result.blockCount,
    used: result.used.count(),
    rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
  }),
);
