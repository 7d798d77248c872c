import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, type Manifest } from './build.js';
import { chunks } from './content.js';
import { extract, extractedSha256, findBytes, fsck, missingTools, scratchDir } from './testing.js';
import { run } from './tools.js';

const TOOLS = [
  'mke2fs',
  'debugfs',
  'dumpe2fs',
  'e2fsck',
  'mkntfs',
  'ntfscat',
  'ntfsfix',
  'mkfs.vfat',
  'fsck.vfat',
  'mcopy',
  'mmd',
  'mdel',
  'mkswap',
  'sfdisk',
  'gcc',
];
const missing = await missingTools(TOOLS);
const skip = missing.length > 0 && process.env.CI !== 'true';

let cacheDir: string;
let work: string;
beforeAll(async () => {
  cacheDir = await scratchDir();
  work = await scratchDir();
});
afterAll(async () => {
  await rm(cacheDir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** Bytes of the random stream behind `random seed=N`. */
const randomBytes = (seed: number, length: number): Buffer =>
  Buffer.concat([...chunks([{ kind: 'random', key: `seed:${seed}`, start: 0, length }])]);

/**
 * Builds a spec, then checks every filesystem partition with its own fsck and every manifest
 * checksum against the file extracted by the filesystem's own tools.
 */
async function buildAndVerify(spec: string): Promise<{ image: string; manifest: Manifest }> {
  const built = await buildImage(spec, { cacheDir });
  for (const p of built.manifest.partitions) {
    if (!['ext2', 'ext3', 'ext4', 'ntfs', 'fat'].includes(p.fs)) continue;
    const part = await extract(built.image, p, work);
    await fsck(p.fs, part);
    for (const f of p.files) {
      expect(await extractedSha256(p.fs, part, f.path, work), `${p.fs} ${f.path}`).toBe(f.sha256);
    }
    await rm(part);
  }
  return built;
}

const sha256File = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('buildImage', () => {
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
        cacheDir,
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
        cacheDir,
      });
      const want = createHash('sha256')
        .update(randomBytes(5, 3 * 2 ** 20))
        .digest('hex');
      expect(await sha256File(image)).toBe(want);
    });

    it('builds a 1 TiB ext4 as a sparse file', async () => {
      const { image, manifest } = await buildAndVerifyLarge();
      const st = await stat(image);
      expect(st.size).toBe(2 ** 40);
      expect(st.blocks * 512).toBeLessThan(256 * 2 ** 20);
      expect(manifest.partitions[0]!.options.blocks).toBe(String(2 ** 28));
    });
  });

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
        const a = await buildImage(base, { cacheDir });
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

  describe.skipIf(skip)('cache', () => {
    it('returns the cached image and survives parallel builds of one spec', async () => {
      const spec = 'disk 4M\n  filesystem ext2\n    file /x 100K random seed=51\n';
      const results = await Promise.all([1, 2, 3].map(() => buildImage(spec, { cacheDir })));
      expect(new Set(results.map((r) => r.image)).size).toBe(1);
      const before = await stat(results[0]!.image);
      const again = await buildImage(`# same meaning, other text\n${spec}`, { cacheDir });
      expect(again.image).toBe(results[0]!.image);
      expect((await stat(again.image)).mtimeMs).toBe(before.mtimeMs);
      const part = await extract(again.image, again.manifest.partitions[0]!, work);
      await fsck('ext2', part);
    });
  });
});

async function buildAndVerifyLarge() {
  return buildImage('disk 1T\n  filesystem ext4\n    file /hello "hi"\n', { cacheDir });
}
