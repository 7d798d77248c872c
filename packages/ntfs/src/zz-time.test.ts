import { readFileSync } from 'node:fs';
import { memorySource } from '@diskube/core';
import { it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { buildNtfsImage } from './test-images.js';
it('t', async () => {
  for (const [count, size] of [[400, 4], [600, 6]]) {
    const t = Date.now();
    const p = buildNtfsImage({ size: size << 20, cluster: 512, steps: [
      { op: 'files', prefix: 'a', count, sizes: [1024] },
      { op: 'fill', prefix: 'fill' },
      { op: 'punch', prefix: 'a', count, every: 2 },
      { op: 'files', prefix: 't', count: 3000, sizes: [3], untilFull: true },
    ] });
    const r = await ntfsDriver.usedBlocks(memorySource(new Uint8Array(readFileSync(p))));
    console.log('RES', count, Date.now() - t, r.facts.mftFragments, r.facts.mftRecords);
  }
}, 300000);
