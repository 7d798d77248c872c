import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { backup, restore } from 'diskube/node';
import { describe, expect, it } from 'vitest';
import { compareMasked, expectFilesystemsIntact } from './images.js';
import { diskube, diskubeJson, requireTools, scratch } from './support.js';

// XFS through the library (diskube/node, default drivers), as a third-party program would use it:
// back up a DSL-built XFS image, restore it, then check it without mounting — xfs_repair -n clean
// and every manifest file read back byte-identical through xfs_db (mkimage's xfs builder) — and
// that only the used blocks came back (the deleted data was dropped).

const have = requireTools('mkfs.xfs', 'xfs_db', 'xfs_repair');

const CONTENT = `
    file /etc/hostname "vm-01"
    file /var/big 6M random seed=2
    files /many 400 small
    file /stale 4M random seed=99
    append /var/big 100K random seed=3
    delete /stale`;

const CASES: Array<[string, string]> = [
  ['v5, 1 KiB blocks', `disk 96M\n  filesystem xfs block=1K\n    prefill random seed=31${CONTENT}`],
  [
    'v4, 4 KiB blocks',
    `disk 96M\n  filesystem xfs metadata=crc=0\n    prefill random seed=32${CONTENT}`,
  ],
  [
    'v5, rmapbt, 4 KiB sectors',
    `disk 96M\n  filesystem xfs sector=4K metadata=rmapbt=1\n    prefill random seed=33${CONTENT}`,
  ],
];

describe.runIf(have)('XFS round trips through diskube/node', () => {
  for (const [name, spec] of CASES) {
    it(name, async () => {
      const { image, manifest } = await buildImage(spec);
      const dir = await scratch();
      const out = join(dir, 'snap.dkb');
      const saved = await backup({ image, out });
      expect(saved.map.parts.map((p) => p.content)).toEqual(['xfs']);
      expect(saved.usedBytes).toBeLessThan(saved.imageBytes / 2);
      const restored = join(dir, 'restored.img');
      await restore({ backup: out, out: restored });
      const ranges = [...saved.map.used.runs()].map(
        ([start, length]) =>
          [start * saved.map.blockSize, length * saved.map.blockSize] as [number, number],
      );
      const { droppedNonZeroBytes } = await compareMasked(image, restored, ranges);
      expect(
        droppedNonZeroBytes,
        'the original had stale data outside the used ranges',
      ).toBeGreaterThan(0);
      expect(await expectFilesystemsIntact(restored, manifest, dir)).toBe(
        manifest.partitions[0]!.files.length,
      );
    });
  }
});

describe.runIf(have)('a dirty XFS through the binary', () => {
  it('a log that needs recovery is refused (exit 5) unless --full-copy-on-doubt', async () => {
    const { image } = await buildImage(
      'disk 64M\n  filesystem xfs\n    file /a 1M random seed=1\n    dirty',
    );
    const refused = await diskube(['inspect', image]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('log needs recovery');
    expect(refused.stderr).toContain('--full-copy-on-doubt');
    const forced = await diskubeJson<{ usedBlocks: number; blockCount: number }>([
      'used',
      image,
      '--full-copy-on-doubt',
    ]);
    expect(forced.usedBlocks).toBe(forced.blockCount);
  });
});
