import { rm } from 'node:fs/promises';
import { bench, describe } from 'vitest';
import { buildImage } from './build.js';
import { chunks } from './content.js';
import { parseSpec } from './parse.js';
import { scratchDir } from './testing.js';

const lines = ['disk 1G gpt'];
for (let p = 0; p < 100; p++) {
  lines.push('  partition 8M ext4 block=1K');
  for (let f = 0; f < 20; f++) lines.push(`    file /p${p}/f${f} 1K text`);
}
const bigSpec = `${lines.join('\n')}\n`;

/** Each iteration builds from scratch in a fresh cache directory. */
async function freshBuild(spec: string) {
  const cacheDir = await scratchDir();
  try {
    await buildImage(spec, { cacheDir });
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

describe('mkimage', () => {
  bench('parse a 2,100-line spec', () => {
    parseSpec(bigSpec);
  });

  bench('generate 64 MiB of random content', () => {
    let n = 0;
    for (const c of chunks([{ kind: 'random', key: 'seed:1', start: 0, length: 64 * 2 ** 20 }])) {
      n += c.length;
    }
    if (n !== 64 * 2 ** 20) throw new Error('short');
  });

  bench(
    'build a sparse 1 TiB ext4',
    () => freshBuild('disk 1T\n  filesystem ext4\n    file /hello "hi"\n'),
    { iterations: 3, time: 0 },
  );

  bench(
    'build 64M ext4 with 500 small files and 8M of data',
    () =>
      freshBuild(
        'disk 64M\n  filesystem ext4\n    files /many 500 small\n    file /big 8M random seed=1\n',
      ),
    { iterations: 3, time: 0 },
  );
});
