import { bench, describe } from 'vitest';
import { restoreImage } from './restore.js';
import { memoryTarget } from './target.js';
import { makeChain } from './test-support.js';

// Reverse (write-once) against patch (replay) restore of the newest state of a snapshot plus 10
// incrementals of a 16 MiB disk (4 KiB blocks). Bytes read and written are printed once.
// Clustered churn (each day rewrites one region) is where reverse also reads less.
for (const churn of ['random', 'clustered'] as const) {
  const chain = await makeChain({
    seed: 1,
    blockSize: 4096,
    blockCount: 4096,
    tail: 0,
    steps: 10,
    blocksPerFrame: 64,
    churn,
  });
  for (const strategy of ['reverse', 'patch'] as const) {
    const r = await restoreImage({
      chain: chain.readers,
      target: memoryTarget(chain.states[0]!.image.length),
      strategy,
    });
    console.log(
      `${churn} churn, ${strategy}: read ${(r.bytesRead / 2 ** 20).toFixed(1)} MiB in ${r.framesRead} frames, wrote ${(r.bytesWritten / 2 ** 20).toFixed(1)} MiB`,
    );
  }
}

const { readers, states } = await makeChain({
  seed: 1,
  blockSize: 4096,
  blockCount: 4096,
  tail: 0,
  steps: 10,
  blocksPerFrame: 64,
});
const size = states[0]!.image.length;
for (const strategy of ['reverse', 'patch'] as const) {
  const r = await restoreImage({ chain: readers, target: memoryTarget(size), strategy });
  console.log(
    `${strategy}: read ${(r.bytesRead / 2 ** 20).toFixed(1)} MiB in ${r.framesRead} frames, wrote ${(r.bytesWritten / 2 ** 20).toFixed(1)} MiB`,
  );
}

describe('restore newest of a 11-backup chain (16 MiB disk)', () => {
  bench('reverse', async () => {
    await restoreImage({ chain: readers, target: memoryTarget(size), strategy: 'reverse' });
  });
  bench('patch', async () => {
    await restoreImage({ chain: readers, target: memoryTarget(size), strategy: 'patch' });
  });
});
