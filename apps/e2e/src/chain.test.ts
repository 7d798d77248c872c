import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskubeJson, requireTools, scratch } from './support.js';

const have = requireTools('mke2fs', 'debugfs', 'e2fsck', 'mkntfs', 'ntfsfix', 'ntfscat', 'gcc');

/** Each point of the chain is the base spec plus the edits so far: add, grow, modify, truncate, delete. */
function chainSpecs(fs: string, options: string): string[] {
  const base = `disk 64M
  filesystem ${fs} ${options}
    prefill random seed=21
    file /etc/hostname "vm-01"
    file /data/log.txt 2M text
    file /data/db.bin 6M random seed=5
    files /many 100 small`;
  const edits = [
    'file /data/new.bin 3M random seed=6',
    'append /data/log.txt 1M text',
    'overwrite /data/db.bin 1M 512K random seed=7',
    'truncate /data/db.bin 2M',
    'delete /many',
  ];
  return [0, 1, 2, 3, 4, 5].map((n) =>
    [base, ...edits.slice(0, n).map((e) => `    ${e}`)].join('\n'),
  );
}

type Json = Record<string, number> & {
  bytesWritten: number;
  changedBlocks: number;
  parentDigestsFrom: string | null;
};

/**
 * Where each link takes its parent's digests: b2 neither uses nor keeps state digests
 * (`--no-cache`), so it reads b1 back and b3 reads b2 back; b3 keeps a digest table too; b4 stores
 * every copy again (`--no-repeats`, format 2.1's layout). The restores below then cover mixed
 * chains.
 */
const LINKS: Array<{ flags: string[]; from: string | null }> = [
  { flags: [], from: null },
  { flags: [], from: 'cache' },
  { flags: ['--no-cache'], from: 'frames' },
  { flags: ['--digest-table'], from: 'frames' },
  { flags: ['--no-repeats'], from: 'cache' },
  { flags: [], from: 'cache' },
];

for (const [fs, options] of [
  ['ext4', ''],
  ['ntfs', 'cluster=4K'],
] as const) {
  describe.runIf(have)(`${fs}: a snapshot and 5 incrementals`, () => {
    it('restores every point, with both strategies giving identical images', async () => {
      const dir = await scratch();
      const points = [];
      for (const [n, spec] of chainSpecs(fs, options).entries()) {
        const built = await buildImage(spec);
        const backup = join(dir, `b${n}.dkb`);
        const args = ['backup', built.image, backup, ...LINKS[n]!.flags];
        if (n > 0) args.push('--base', join(dir, `b${n - 1}.dkb`));
        const summary = await diskubeJson<Json>(args);
        if (n > 0) expect(summary.changedBlocks).toBeGreaterThan(0);
        if (LINKS[n]!.flags.includes('--no-repeats')) expect(summary.repeatedBlocks).toBe(0);
        expect(summary.storedBlocks).toBeGreaterThan(0);
        expect(summary.parentDigestsFrom).toBe(LINKS[n]!.from);
        if (summary.parentDigestsFrom === 'frames')
          expect(summary.parentBytesRead).toBeGreaterThan(0);
        else expect(summary.parentBytesRead ?? 0).toBe(0);
        const used = await diskubeJson<{ ranges: Array<[number, number]>; usedBytes: number }>([
          'used',
          built.image,
        ]);
        points.push({ ...built, backup, used });
      }

      for (const [n, point] of points.entries()) {
        const reverse = join(dir, `r${n}-reverse.img`);
        const patch = join(dir, `r${n}-patch.img`);
        const r = await diskubeJson<Json>([
          'restore',
          point.backup,
          reverse,
          '--strategy',
          'reverse',
        ]);
        const p = await diskubeJson<Json>(['restore', point.backup, patch, '--strategy', 'patch']);
        expect(Buffer.compare(await readFile(reverse), await readFile(patch))).toBe(0);
        // Write-once: the reverse strategy writes each used non-zero block exactly once, so it
        // never writes more than the patch strategy, which rewrites blocks changed along the chain.
        expect(r.bytesWritten).toBeLessThanOrEqual(p.bytesWritten);
        if (n > 0) expect(r.bytesWritten).toBeLessThan(p.bytesWritten);
        await compareMasked(point.image, reverse, point.used.ranges);
        await expectFilesystemsIntact(reverse, point.manifest, dir);
      }
    });
  });
}
