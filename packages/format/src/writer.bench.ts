import { randomFillSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { bench, describe } from 'vitest';
import { writeSnapshot } from './writer.js';

// Snapshot write throughput on a 64 MiB synthetic image (4 KiB blocks): a quarter random, a
// quarter text-like, a quarter zeros, a quarter unused. MiB/s = 64 × (ops/s) × 3/4 used.
const bs = 4096;
const n = 16384;
const image = new Uint8Array(n * bs);
for (let i = 0; i < n; i++) {
  const block = image.subarray(i * bs, (i + 1) * bs);
  if (i % 4 === 0) randomFillSync(block);
  else if (i % 4 === 1) for (let j = 0; j < bs; j++) block[j] = 97 + ((i * 31 + j * 7) % 23);
}
const used = new Bitmap(n);
for (let i = 0; i < n; i++) if (i % 4 !== 3) used.set(i);
const source = memorySource(image);
const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

describe('snapshot write, 48 MiB used of 64 MiB', () => {
  bench('zstd level 1', async () => {
    await writeSnapshot({
      source,
      used,
      blockSize: bs,
      out: sink(),
      compress: { type: 'zstd', level: 1 },
    });
  });
  bench('zstd level 3', async () => {
    await writeSnapshot({
      source,
      used,
      blockSize: bs,
      out: sink(),
      compress: { type: 'zstd', level: 3 },
    });
  });
  bench('no compression', async () => {
    await writeSnapshot({ source, used, blockSize: bs, out: sink(), compress: { type: 'none' } });
  });
});
