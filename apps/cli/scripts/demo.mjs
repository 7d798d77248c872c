#!/usr/bin/env node
// The main job on a built-in sample: build a VM disk with the real tools, back it up, change it,
// back it up again incrementally, restore, and check the result with the filesystems' own tools.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '@diskube/mkimage';
import { canVerify, extract, extractedFiles, fsck } from '@diskube/mkimage/testing';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '../dist/cli.js');
const work = join(tmpdir(), 'diskube-demo');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// A UEFI Linux VM as an installer leaves it: an EFI system partition (FAT32), an XFS root (the
// RHEL/Rocky/Alma default), an NTFS data disk shared with Windows, and swap.
const base = `disk 512M gpt
  partition 64M fat fat=32 cluster=512 type=efi name="EFI system partition"
    prefill random seed=9
    file /EFI/BOOT/BOOTX64.EFI 900K random seed=5
    file /EFI/rocky/grubx64.efi 2M random seed=6
    file /EFI/rocky/grub.cfg "search --no-floppy --fs-uuid --set=dev 0f0e0d0c"
    file /EFI/old-shim.efi 1M random seed=10
    delete /EFI/old-shim.efi
  partition 224M xfs name=root
    prefill random seed=7          # stale bytes a used-block backup must drop
    file /etc/hostname "vm-01"
    file /var/log/messages 16M text
    file /srv/db.bin 40M random seed=1
    files /usr/share/doc 800 small
    file /tmp/old-build.tar 48M random seed=2
    delete /tmp/old-build.tar
  partition 160M ntfs name=data
    prefill random seed=8
    file /Users/vm/report.txt 4M text
    file /Users/vm/photo.raw 16M random seed=3
  partition rest swap`;
// Tuesday: the data disk changed in place (new and appended files; the root is rebuilt by the
// XFS builder's protofile, so the day's changes go where the DSL writes in place).
const tuesday = `${base.replace(
  '  partition rest swap',
  '    append /Users/vm/report.txt 1M text\n    file /Users/vm/new.bin 4M random seed=4\n  partition rest swap',
)}`;

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
  'Building the sample UEFI disk (GPT: FAT32 EFI system partition, XFS root, NTFS data, swap) with mkfs.fat, mkfs.xfs, mkntfs, mkswap, sfdisk …',
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
const checked = [];
for (const p of next.manifest.partitions) {
  if (!canVerify(p.fs)) continue; // swap holds no files
  checked.push(p.fs);
  const part = await extract(restored, p, work);
  await fsck(p.fs, part);
  const found = await extractedFiles(
    p.fs,
    part,
    p.files.map((f) => f.path),
    work,
  );
  // FAT names come back as the filesystem stores them: compare case-insensitively there.
  const lower = new Map([...found].map(([k, v]) => [k.toLowerCase(), v]));
  for (const f of p.files) {
    const sha = found.get(f.path) ?? lower.get(f.path.toLowerCase());
    if (sha !== f.sha256) throw new Error(`${f.path} differs after restore`);
    files++;
  }
}
console.log(
  `\nRestored disk checked: ${checked.join(', ')} clean by their own checkers, ${files} files byte-identical.`,
);

const rawZstd = execFileSync('sh', ['-c', `zstd -3 -T0 -q -c "${monday.image}" | wc -c`])
  .toString()
  .trim();
console.log(`
What was saved for a ${mib(statSync(monday.image).size)} disk:
  raw image compressed with zstd -3   ${mib(Number(rawZstd))}
  diskube snapshot (monday)           ${mib(statSync(join(work, 'monday.dkb')).size)}
  diskube incremental (tuesday)       ${mib(statSync(join(work, 'tuesday.dkb')).size)}
Files are in ${work}.`);
