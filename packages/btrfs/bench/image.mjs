// The benchmark image, shared by src/driver.bench.ts and bench/peak.mjs: a 1 TiB sparse btrfs
// made by mkfs.btrfs defaults (metadata DUP, 16 KiB nodes) holding 3000 small files and a few
// bigger ones from --rootdir.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIR = join(tmpdir(), 'diskube-btrfs-bench');

/** Path of the (cached) benchmark image. */
export function benchImage() {
  const image = join(DIR, 'btrfs-1t-v1.img');
  if (existsSync(image)) return image;
  mkdirSync(DIR, { recursive: true });
  const work = join(DIR, `tmp.${process.pid}`);
  const root = join(work, 'root');
  mkdirSync(join(root, 'small'), { recursive: true });
  try {
    for (let i = 0; i < 3000; i++) {
      // Above the inline limit, so each is an extent of its own.
      writeFileSync(join(root, 'small', `f${i}`), `file ${i}\n`.repeat(600));
    }
    for (let i = 0; i < 8; i++) writeFileSync(join(root, `blob${i}`), Buffer.alloc(8 << 20, i + 1));
    const img = join(work, 'image');
    execFileSync('truncate', ['-s', '1T', img]);
    execFileSync('mkfs.btrfs', ['-q', '-f', '-K', '--rootdir', root, img], { stdio: 'inherit' });
    renameSync(img, image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return image;
}
