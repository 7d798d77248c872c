import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '@diskube/core/node';
import { bench, describe } from 'vitest';
import { ntfsDriver } from './driver.js';

// usedBlocks on a 256 GiB sparse NTFS (4 KiB clusters: 67 M clusters, an 8 MiB $Bitmap read in
// 1 MiB chunks). Peak memory is measured by `node bench/peak.mjs` (see README).

const dir = join(tmpdir(), 'diskube-ntfs-bench');
export const image = join(dir, 'ntfs-256g.img');

function build(): void {
  if (existsSync(image)) return;
  mkdirSync(dir, { recursive: true });
  const tmp = `${image}.${process.pid}`;
  execFileSync('truncate', ['-s', '256G', tmp]);
  execFileSync('mkntfs', ['-Q', '-F', '-q', '-c', '4096', '-s', '512', tmp], { stdio: 'ignore' });
  execFileSync('mv', [tmp, image]);
}

build();

describe('ntfs usedBlocks', () => {
  bench(
    '256 GiB sparse NTFS, 4 KiB clusters',
    async () => {
      const source = await openFileSource(image);
      try {
        const result = await ntfsDriver.usedBlocks(source);
        if (result.used.count() === 0) throw new Error('nothing used?');
      } finally {
        await source.close();
      }
    },
    { iterations: 5, warmupIterations: 1 },
  );
});
