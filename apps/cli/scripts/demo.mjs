#!/usr/bin/env node
// The main job on a built-in sample: build a VM disk with the real tools, back it up, change it,
// back it up again incrementally, restore, and check the result with the filesystems' own tools.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '@diskube/mkimage';
import { extract, extractedFiles, fsck } from '@diskube/mkimage/testing';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../dist/cli.js');
const work = join(tmpdir(), 'diskube-demo');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const base = `disk 512M gpt
  partition 256M ext4 label=root
    prefill random seed=7          # stale bytes a used-block backup must drop
    file /etc/hostname "vm-01"
    file /var/log/syslog 24M text
    file /srv/db.bin 48M random seed=1
    files /usr/share/doc 800 small
    file /tmp/old-build.tar 64M random seed=2
    delete /tmp/old-build.tar
  partition 160M ntfs label=data
    prefill random seed=8
    file /Users/vm/report.txt 4M text
    file /Users/vm/photo.raw 16M random seed=3
  partition 64M swap`;
const tuesday = `${base.replace('  partition 160M ntfs', '    append /var/log/syslog 2M text\n    file /srv/new.bin 4M random seed=4\n  partition 160M ntfs')}`;

const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
function diskube(...args) {
  console.log(`\n$ diskube ${args.join(' ')}`);
  const result = spawnSync(process.execPath, [cli, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  process.stdout.write(result.stdout);
  if (result.status !== 0)
    throw new Error(`diskube ${args[0]} failed with exit code ${result.status}`);
  return result.stdout;
}

console.log(
  'Building the sample disk (GPT: ext4 root, NTFS data, swap) with mke2fs, mkntfs, mkswap, sfdisk …',
);
const monday = await buildImage(base);
const next = await buildImage(tuesday);

diskube('inspect', monday.image);
diskube('backup', monday.image, join(work, 'monday.dkb'));
diskube('backup', next.image, join(work, 'tuesday.dkb'), '--base', join(work, 'monday.dkb'));
diskube('verify', join(work, 'tuesday.dkb'));
const restored = join(work, 'restored.img');
diskube('restore', join(work, 'tuesday.dkb'), restored);

let files = 0;
for (const p of next.manifest.partitions) {
  if (!['ext4', 'ntfs'].includes(p.fs)) continue;
  const part = await extract(restored, p, work);
  await fsck(p.fs, part);
  const found = await extractedFiles(
    p.fs,
    part,
    p.files.map((f) => f.path),
    work,
  );
  for (const f of p.files) {
    if (found.get(f.path) !== f.sha256) throw new Error(`${f.path} differs after restore`);
    files++;
  }
}
console.log(`\nRestored disk checked: e2fsck and ntfsfix clean, ${files} files byte-identical.`);

const rawZstd = execFileSync('sh', ['-c', `zstd -3 -T0 -q -c "${monday.image}" | wc -c`])
  .toString()
  .trim();
console.log(`
What was saved for a ${mib(statSync(monday.image).size)} disk:
  raw image compressed with zstd -3   ${mib(Number(rawZstd))}
  diskube snapshot (monday)           ${mib(statSync(join(work, 'monday.dkb')).size)}
  diskube incremental (tuesday)       ${mib(statSync(join(work, 'tuesday.dkb')).size)}
Files are in ${work}.`);
