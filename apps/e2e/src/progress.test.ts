import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { DISKUBE, diskube, requireTools, scratch } from './support.js';

const have = requireTools('script', 'mke2fs', 'debugfs');
const SPEC = `disk 32M
  filesystem ext4 block=4K
    file /a 8M random seed=50`;

describe.runIf(have)('progress', () => {
  it('draws a progress bar on stderr when it is a terminal', async () => {
    const { image } = await buildImage(SPEC);
    const out = join(await scratch(), 'b.dkb');
    // `script` runs the command on a pseudo-terminal, as an operator's shell would.
    const tty = execFileSync(
      'script',
      ['-qfec', `"${process.execPath}" "${DISKUBE}" backup "${image}" "${out}"`, '/dev/null'],
      {
        encoding: 'utf8',
      },
    );
    expect(tty).toMatch(/backup \[#+\.*\]\s+\d+% .*ETA/);
  });

  it('is silent on stderr when it is not a terminal', async () => {
    const { image } = await buildImage(SPEC);
    const result = await diskube(['backup', image, join(await scratch(), 'b.dkb')]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^snapshot /);
  });
});
