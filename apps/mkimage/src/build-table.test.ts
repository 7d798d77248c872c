import { readFile, rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildImage } from './build.js';
import { scratchBuild, sha256File } from './scratch.test-support.js';
import { BUILD_TOOLS, extract, missingTools, randomBytes, scratchDir } from './testing.js';
import { run } from './tools.js';

const missing = await missingTools(BUILD_TOOLS);
const skip = missing.length > 0 && process.env.CI !== 'true';

const scratch = scratchBuild();
const { buildAndVerify } = scratch;

describe('buildImage with tables, chains, fragments, dirty', { timeout: 120_000 }, () => {
  describe.skipIf(skip)('with a partition table', () => {
    it('builds MBR with primary, extended and logical partitions', async () => {
      const { image, manifest } = await buildAndVerify(`
disk 100M mbr
  partition 20M ext4 bootable
    file /boot/vmlinuz 1M random seed=31
  partition 10M swap
  extended rest
    partition 20M fat fat=16
      file /autoexec.bat "echo hi"
    partition 20M ntfs
      file /pagefile.sys 512K zeros
    partition rest ext2 block=1K
      files /x 10 4K
`);
      expect(manifest.partitions.map((p) => [p.index, p.offset, p.size, p.fs, p.type])).toEqual([
        [1, 2 ** 20, 20 * 2 ** 20, 'ext4', '83'],
        [2, 21 * 2 ** 20, 10 * 2 ** 20, 'swap', '82'],
        // Each logical partition follows its EBR, 1 MiB before it.
        [5, 32 * 2 ** 20, 20 * 2 ** 20, 'fat', 'e'],
        [6, 53 * 2 ** 20, 20 * 2 ** 20, 'ntfs', '7'],
        [7, 74 * 2 ** 20, 26 * 2 ** 20, 'ext2', '83'],
      ]);
      const table = JSON.parse((await run('sfdisk', ['-J', image])).stdout).partitiontable;
      expect(table.label).toBe('dos');
      const parts = table.partitions.map((p: { start: number; size: number; type: string }) => [
        p.start * 512,
        p.size * 512,
        p.type,
      ]);
      expect(parts).toEqual([
        [2 ** 20, 20 * 2 ** 20, '83'],
        [21 * 2 ** 20, 10 * 2 ** 20, '82'],
        [31 * 2 ** 20, 69 * 2 ** 20, '5'],
        ...manifest.partitions.slice(2).map((p) => [p.offset, p.size, p.type]),
      ]);
      expect(table.partitions[0].bootable).toBe(true);
    });

    it('builds GPT with several partitions, byte-identical on rebuild', async () => {
      const spec = `
disk 96M gpt
  partition 8M fat fat=12 type=efi name="EFI system"
    file /EFI/BOOT/BOOTX64.EFI 64K random seed=41
  partition 30M ext4 name=root features=metadata_csum,64bit
    prefill random seed=42
    file /etc/fstab "# fstab\\n"
    file /var/log/syslog 2M text
    delete /var/log/syslog
  partition 24M ntfs cluster=1K name=data
    prefill random seed=43
    file /a/b.txt 20K text
  partition rest raw type=linux
    prefill random seed=44
`;
      const first = await buildAndVerify(spec);
      const table = JSON.parse((await run('sfdisk', ['-J', first.image])).stdout).partitiontable;
      expect(table.label).toBe('gpt');
      expect(
        table.partitions.map((p: { start: number; size: number; name?: string; type: string }) => [
          p.start * 512,
          p.size * 512,
          p.name,
          p.type,
        ]),
      ).toEqual(
        first.manifest.partitions.map((p, i) => [
          p.offset,
          p.size,
          ['EFI system', 'root', 'data', undefined][i],
          p.type,
        ]),
      );
      expect(first.manifest.partitions.map((p) => p.type)).toEqual([
        'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
        '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
        'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
        '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      ]);
      // The last partition ends where the backup GPT begins.
      const last = first.manifest.partitions[3]!;
      expect(last.offset + last.size).toBe(96 * 2 ** 20 - 33 * 512);

      const otherCache = await scratchDir();
      try {
        const second = await buildImage(spec, { cacheDir: otherCache });
        expect(second.image).not.toBe(first.image);
        expect(await sha256File(second.image)).toBe(await sha256File(first.image));
        expect(second.manifest).toEqual(first.manifest);
      } finally {
        await rm(otherCache, { recursive: true, force: true });
      }
    });
  });

  describe.skipIf(skip)('chains', () => {
    it.each([
      ['ext4', 'block=4K'],
      ['ext3', 'block=1K'],
      ['ntfs', 'cluster=4K'],
    ])(
      'a spec plus change lines differs from the base %s image only where it changed',
      async (type, options) => {
        const base = `disk 16M\n  filesystem ${type} ${options}\n    file /big 1M random seed=61\n    file /log 10K text\n    file /t 9000 random seed=63\n`;
        const next = `${base}    overwrite /big 8K 4K random seed=62\n    append /log 100 text\n    truncate /t 5000\n`;
        const a = await buildImage(base, { cacheDir: scratch.cacheDir });
        const b = await buildAndVerify(next);
        const [x, y] = [await readFile(a.image), await readFile(b.image)];
        const changed: number[] = [];
        for (let i = 0; i < x.length; i += 4096) {
          if (!x.subarray(i, i + 4096).equals(y.subarray(i, i + 4096))) changed.push(i / 4096);
        }
        // The overwritten 4K lands on the block that held the file's old bytes 8K..12K.
        const old = randomBytes(61, 12 * 1024).subarray(8 * 1024);
        const at = x.indexOf(old);
        expect(at).toBeGreaterThan(0);
        expect(y.subarray(at, at + 4096)).toEqual(randomBytes(62, 4096));
        expect(changed).toContain(Math.floor(at / 4096));
        // Data blocks touched: /big, /log's tail, /t's tail; the rest is metadata.
        expect(changed.length).toBeLessThan(16);
      },
    );
  });

  describe.skipIf(skip)('fragmentation', () => {
    it('splits an ext4 file into enough extents to need an extent tree block', async () => {
      const { image } = await buildAndVerify(`
disk 32M
  filesystem ext4 block=1K
    files /thin 40 4K
    delete /thin/f???[02468]
    file /big 1M random seed=71 fragments=40
`);
      const ex = await run('debugfs', ['-R', 'ex /big', image]);
      const leaves = ex.stdout.split('\n').filter((l) => /^\s*1\/\s*1\s/.test(l));
      expect(leaves.length).toBeGreaterThanOrEqual(30);
      const ls = await run('debugfs', ['-R', 'ls /thin', image]);
      expect(ls.stdout).toContain('f0001');
      expect(ls.stdout).not.toMatch(/f0002\b/);
    });

    it('gives an NTFS file a long runlist', async () => {
      const { image, manifest } = await buildAndVerify(`
disk 32M
  filesystem ntfs
    file /big 1M random seed=72 fragments=40
`);
      expect(manifest.partitions[0]!.files.map((f) => f.path)).toEqual(['/big']);
      const info = await run('ntfsinfo', ['-v', '-F', '/big', image]);
      const runs = Number(/Total runs: (\d+)/.exec(info.stdout)?.[1]);
      expect(runs).toBeGreaterThanOrEqual(30);
    });
  });

  describe.skipIf(skip)('dirty', () => {
    it('leaves ext4, NTFS and FAT marked as not cleanly unmounted', async () => {
      const { image, manifest } = await buildImage(
        `
disk 64M gpt
  partition 20M ext4
    file /a "x"
    dirty
  partition 20M ntfs
    file /a "x"
    dirty
  partition rest fat fat=16
    file /a "x"
    dirty
`,
        { cacheDir: scratch.cacheDir },
      );
      const [ext, ntfs, fat] = manifest.partitions;
      for (const p of manifest.partitions) expect(p.options.dirty).toBe('true');
      const e = await run('dumpe2fs', ['-h', await extract(image, ext!, scratch.work)]);
      expect(e.stdout).toMatch(/Filesystem state:\s+not clean/);
      expect(e.stdout).toMatch(/Filesystem features:.*needs_recovery/);
      const n = await run('ntfsinfo', ['-m', await extract(image, ntfs!, scratch.work)], {
        okCodes: [1],
      });
      expect(n.stderr).toContain('Volume is scheduled for check');
      const f = await run('fsck.vfat', ['-n', await extract(image, fat!, scratch.work)], {
        okCodes: [0, 1],
      });
      expect(f.stdout).toContain('Dirty bit is set');
    });
  });
});
