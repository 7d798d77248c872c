import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { discoverChain } from './chain.js';
import type { RestoreReason } from './reasons.js';
import { restoreFromPath, restoreImage } from './restore.js';
import { makeChain } from './test-support.js';

describe('files on disk', async () => {
  const { states, files, readers } = await makeChain({
    seed: 7,
    blockSize: 1024,
    blockCount: 200,
    tail: 0,
    steps: 3,
  });
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'diskube-restore-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const put = async (name: string, bytes: Uint8Array) => writeFile(join(dir, name), bytes);

  test('discovers the chain by parent id, whatever the file names, and restores a sparse file', async () => {
    // Names that sort in the wrong order and do not match the recorded hints.
    await put('z-full.dkb', files[0]!);
    await put('y-inc1.dkb', files[1]!);
    await put('x-inc2.dkb', files[2]!);
    await put('w-inc3.dkb', files[3]!);
    await put('notes.txt', new TextEncoder().encode('not a backup'));
    const chain = await discoverChain(join(dir, 'x-inc2.dkb'));
    try {
      expect(chain.map((r) => r.path.split('/').pop())).toEqual([
        'z-full.dkb',
        'y-inc1.dkb',
        'x-inc2.dkb',
      ]);
      const out = join(dir, 'restored.img');
      const result = await restoreImage({ chain, target: out });
      expect(Buffer.compare(await readFile(out), states[2]!.expected)).toBe(0);
      expect(result.bytesWritten).toBe(readers[2]!.digestedBlocks * 1024);
      // Unused and zero blocks are holes: fewer 512-byte sectors allocated than the size.
      const st = await stat(out);
      expect(st.size).toBe(states[2]!.expected.length);
      expect(st.blocks * 512).toBeLessThan(st.size);
      await expect(restoreImage({ chain, target: out })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        reason: 'exists' satisfies RestoreReason,
      });
      await restoreImage({ chain, target: out, overwrite: true, strategy: 'patch' });
      expect(Buffer.compare(await readFile(out), states[2]!.expected)).toBe(0);
    } finally {
      await Promise.all(chain.map((r) => r.close()));
    }
  });

  test('restoreFromPath finds, restores and closes; a damaged parent under its own name is CORRUPT', async () => {
    await put('backup-0.dkb', files[0]!);
    await put('backup-1.dkb', files[1]!);
    const out = join(dir, 'from-path.img');
    const result = await restoreFromPath(join(dir, 'backup-1.dkb'), {
      target: out,
      zeroUnused: true,
    });
    expect(result.chain.map((p) => p.split('/').pop())).toEqual(['backup-0.dkb', 'backup-1.dkb']);
    expect(Buffer.compare(await readFile(out), states[1]!.expected)).toBe(0);
    // The writer recorded "backup-0.dkb" (the reader's name) as the parent hint.
    const damaged = files[0]!.slice();
    damaged[40]! ^= 1;
    await put('backup-0.dkb', damaged);
    await rm(join(dir, 'z-full.dkb'));
    await expect(discoverChain(join(dir, 'backup-1.dkb'))).rejects.toMatchObject({
      code: 'CORRUPT',
      structure: 'backup header',
    });
    await rm(join(dir, 'backup-0.dkb'));
    await rm(join(dir, 'backup-1.dkb'));
    await put('z-full.dkb', files[0]!);
  });

  test('a missing parent is a typed error', async () => {
    await rm(join(dir, 'y-inc1.dkb'), { force: true });
    await expect(discoverChain(join(dir, 'w-inc3.dkb'))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      reason: 'missing-parent' satisfies RestoreReason,
    });
    await put('y-inc1.dkb', files[1]!);
    const chain = await discoverChain(join(dir, 'w-inc3.dkb'));
    expect(chain).toHaveLength(4);
    await Promise.all(chain.map((r) => r.close()));
  });

  test('damage anywhere in a used backup makes restore refuse, leaving no image behind', async () => {
    const frame = (await readers[1]!.frameIndex())[1]!;
    for (const [name, offset] of [
      ['frame', frame.offset + 2],
      ['header', 20],
      ['footer', files[1]!.length - 30],
    ] as const) {
      const damaged = files[1]!.slice();
      damaged[offset]! ^= 0x10;
      await put('y-inc1.dkb', damaged);
      const out = join(dir, `never-${name}.img`);
      for (const [from, strategy] of [
        ['w-inc3.dkb', 'patch'],
        ['y-inc1.dkb', 'reverse'],
      ] as const) {
        const attempt = async () => {
          const chain = await discoverChain(join(dir, from));
          try {
            await restoreImage({ chain, target: out, strategy });
          } finally {
            await Promise.all(chain.map((r) => r.close()));
          }
        };
        // A damaged header hides the parent from discovery; other damage is found when opening
        // the file or reading the frame.
        const code = name === 'header' && from !== 'y-inc1.dkb' ? 'INVALID_ARGUMENT' : 'CORRUPT';
        await expect(attempt()).rejects.toMatchObject({ code });
        expect(
          (await readdir(dir)).filter((f) => f.startsWith('never') || f.startsWith('.')),
        ).toEqual([]);
      }
    }
    await put('y-inc1.dkb', files[1]!);
  });
});
