import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildImage } from './build.js';
import { scratchBuild, sha256File } from './scratch.test-support.js';
import { BUILD_TOOLS, extract, findBytes, fsck, missingTools, randomBytes } from './testing.js';
import { run } from './tools.js';

const missing = await missingTools(BUILD_TOOLS);
const skip = missing.length > 0 && process.env.CI !== 'true';

const scratch = scratchBuild();
const { buildAndVerify } = scratch;

describe('buildImage without a partition table', { timeout: 120_000 }, () => {
  it.skipIf(skip)('has every system tool it needs', () => {
    expect(missing, 'missing tools (see the warning above)').toEqual([]);
  });

  describe.skipIf(skip)('without a partition table', () => {
    it('builds ext4 1K with prefill, many files and a delete; the deleted bytes stay', async () => {
      const { image, manifest } = await buildAndVerify(`
disk 64M
  filesystem ext4 block=1K features=^has_journal,^64bit label=root
    prefill random seed=7
    file /etc/hostname "vm-01"
    file /data/blob 256K random seed=1
    files /many 200 small
    delete /data/blob
`);
      expect(manifest.table).toBe('none');
      const [p] = manifest.partitions;
      expect(p).toMatchObject({ index: 0, offset: 0, size: 64 * 2 ** 20, fs: 'ext4' });
      expect(p!.options).toMatchObject({ block: '1024', label: 'root' });
      expect(p!.options.features).not.toContain('has_journal');
      expect(p!.options.features).not.toContain('64bit');
      expect(p!.files).toHaveLength(201);
      expect(p!.files.find((f) => f.path === '/data/blob')).toBeUndefined();
      expect(p!.files.find((f) => f.path === '/etc/hostname')).toMatchObject({ size: 5 });
      expect(p!.dirs).toEqual(['/data', '/etc', '/many']);
      // debugfs rm frees the blocks without zeroing: the blob's bytes are still in the image.
      const blob = randomBytes(1, 256 * 1024);
      expect(await findBytes(image, blob.subarray(0, 1024))).toBeGreaterThan(0);
      expect(await findBytes(image, blob.subarray(255 * 1024))).toBeGreaterThan(0);
      // The prefill survives mkfs in free space too.
      const garbage = randomBytes(7, 60 * 2 ** 20).subarray(60 * 2 ** 20 - 4096);
      expect(await findBytes(image, garbage)).toBe(60 * 2 ** 20 - 4096);
      const ls = await run('debugfs', ['-R', 'ls -p /data', image]);
      expect(ls.stdout).not.toContain('blob');
    });

    it.each([
      ['ext2', 'block=1K inodes=512'],
      ['ext2', 'block=1K revision=0 group=2048 reserved=0'],
      ['ext3', 'block=4K features=^resize_inode label=three'],
      ['ext4', 'block=4K features=64bit,metadata_csum,^huge_file inode_size=512'],
      ['ext4', 'block=64K'],
      ['ext4', 'features=bigalloc cluster=16K block=1K'],
    ])('builds %s %s', async (type, options) => {
      const { manifest } = await buildAndVerify(`
disk 48M
  filesystem ${type} ${options}
    dir /empty
    file "/a dir/with space.txt" 10K text
    file /d/e/f 300K random seed=3
    append /d/e/f 5000 random seed=4
    overwrite /d/e/f 4000 "patched"
    file /g 100K zeros
    truncate /g 5000
    file /h 64K zeros
    overwrite /h 20000 "into a hole"
    truncate /h 70000
`);
      const p = manifest.partitions[0]!;
      expect(p.fs).toBe(type);
      // mke2fs rounds inodes= up to whole inode-table blocks.
      const inodes = /inodes=(\d+)/.exec(options)?.[1];
      if (inodes) expect(Number(p.options.inodes)).toBeGreaterThanOrEqual(Number(inodes));
      for (const key of ['revision', 'group']) {
        const given = new RegExp(`${key}=(\\d+)`).exec(options)?.[1];
        if (given) expect(p.options[key], key).toBe(given);
      }
      const block = /block=(\d+)K/.exec(options);
      if (block) expect(p.options.block).toBe(String(Number(block[1]) * 1024));
      for (const f of options
        .split(' ')
        .find((o) => o.startsWith('features='))
        ?.slice(9)
        .split(',') ?? []) {
        if (f.startsWith('^')) expect(p.options.features!.split(',')).not.toContain(f.slice(1));
        else expect(p.options.features!.split(',')).toContain(f);
      }
      expect(p.files.map((f) => [f.path, f.size])).toEqual([
        ['/a dir/with space.txt', 10240],
        ['/d/e/f', 300 * 1024 + 5000],
        ['/g', 5000],
        ['/h', 70000],
      ]);
      expect(p.dirs).toEqual(['/a dir', '/d', '/d/e', '/empty']);
    });

    it('builds NTFS 4K with dirs, in-place changes and a delete that leaves stale data', async () => {
      const { image, manifest } = await buildAndVerify(`
disk 32M
  filesystem ntfs cluster=4K label=win
    prefill random seed=11
    file /Windows/System32/config.sys 200K random seed=12
    file /gone.bin 64K random seed=13
    files /Users/many 50 small
    delete /gone.bin
    overwrite /Windows/System32/config.sys 1000 4K zeros
    append /Windows/System32/config.sys "end"
    truncate /Users/many/f0001 10
`);
      const p = manifest.partitions[0]!;
      expect(p).toMatchObject({ fs: 'ntfs', options: { cluster: '4096', label: 'win' } });
      expect(p.files).toHaveLength(51);
      expect(p.files.find((f) => f.path === '/Windows/System32/config.sys')?.size).toBe(
        200 * 1024 + 3,
      );
      expect(p.dirs).toEqual(['/Users', '/Users/many', '/Windows', '/Windows/System32']);
      // Later allocations may reuse the first freed clusters; the tail is still there.
      const gone = randomBytes(13, 64 * 1024);
      expect(await findBytes(image, gone.subarray(60 * 1024))).toBeGreaterThan(0);
      // mkntfs -Q does not zero: the prefill is still in free clusters near the end.
      const tail = randomBytes(11, 28 * 2 ** 20 + 4096).subarray(28 * 2 ** 20);
      expect(await findBytes(image, tail)).toBe(28 * 2 ** 20);
      const ls = await run('ntfsls', ['-a', image, '-p', '/']);
      expect(ls.stdout).not.toContain('gone.bin');
      expect(ls.stdout).toContain('Windows');
    });

    it.each(['12', '16', '32'])('builds FAT%s', async (bits) => {
      const { image, manifest } = await buildAndVerify(`
disk ${{ '12': '4M', '16': '20M', '32': '40M' }[bits]}
  filesystem fat fat=${bits} label=STICK
    file /readme.txt "hello"
    file "/Docs/Long File Name.txt" 3K text
    files /docs/many 30 small
    file /old.bin 8K random seed=21
    delete /old.bin
    overwrite /readme.txt 1 "E"
`);
      const p = manifest.partitions[0]!;
      expect(p.options.fat).toBe(bits);
      expect(p.files.find((f) => f.path === '/readme.txt')?.size).toBe(5);
      expect(await findBytes(image, randomBytes(21, 8192).subarray(0, 2048))).toBeGreaterThan(0);
    });

    it('builds swap with a stable UUID', async () => {
      const { image, manifest } = await buildImage('disk 1M\n  filesystem swap label=sw', {
        cacheDir: scratch.cacheDir,
      });
      const p = manifest.partitions[0]!;
      const head = (await readFile(image)).subarray(0, 4096);
      expect(head.subarray(4086).toString('latin1')).toBe('SWAPSPACE2');
      const uuid = Buffer.from(p.options.uuid!.replace(/-/g, ''), 'hex');
      expect(head.subarray(1036, 1052)).toEqual(uuid);
      expect(head.subarray(1052, 1054).toString()).toBe('sw');
    });

    it('builds a raw disk of deterministic random bytes', async () => {
      const { image } = await buildImage('disk 3M\n  filesystem raw\n    prefill random seed=5', {
        cacheDir: scratch.cacheDir,
      });
      const want = createHash('sha256')
        .update(randomBytes(5, 3 * 2 ** 20))
        .digest('hex');
      expect(await sha256File(image)).toBe(want);
    });

    it('builds a 1 TiB ext4 as a sparse file', async () => {
      const { image, manifest } = await buildImage(
        'disk 1T\n  filesystem ext4\n    file /hello "hi"\n',
        {
          cacheDir: scratch.cacheDir,
        },
      );
      const st = await stat(image);
      expect(st.size).toBe(2 ** 40);
      expect(st.blocks * 512).toBeLessThan(256 * 2 ** 20);
      expect(manifest.partitions[0]!.options.blocks).toBe(String(2 ** 28));
    });
  });

  describe.skipIf(skip)('cache', () => {
    it('returns the cached image and survives parallel builds of one spec', async () => {
      const spec = 'disk 4M\n  filesystem ext2\n    file /x 100K random seed=51\n';
      const results = await Promise.all(
        [1, 2, 3].map(() => buildImage(spec, { cacheDir: scratch.cacheDir })),
      );
      expect(new Set(results.map((r) => r.image)).size).toBe(1);
      const before = await stat(results[0]!.image);
      const again = await buildImage(`# same meaning, other text\n${spec}`, {
        cacheDir: scratch.cacheDir,
      });
      expect(again.image).toBe(results[0]!.image);
      expect((await stat(again.image)).mtimeMs).toBe(before.mtimeMs);
      const part = await extract(again.image, again.manifest.partitions[0]!, scratch.work);
      await fsck('ext2', part);
    });
  });
});
