// The benchmark image, shared by src/driver.bench.ts and bench/peak.mjs: a 1 TiB sparse XFS made
// by mkfs.xfs defaults (v5, 4 KiB blocks, 4 AGs of 256 GiB) holding a few files from a protofile.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIR = join(tmpdir(), 'diskube-xfs-bench');

/** Path of the (cached) benchmark image. */
export function benchImage() {
  const image = join(DIR, 'xfs-1t-v1.img');
  if (existsSync(image)) return image;
  mkdirSync(DIR, { recursive: true });
  const work = join(DIR, `tmp.${process.pid}`);
  mkdirSync(work, { recursive: true });
  try {
    const proto = ['/dev/null', '0 0', 'd--755 0 0', 'etc d--755 0 0'];
    for (let i = 0; i < 200; i++) {
      writeFileSync(join(work, `f${i}`), `file ${i}\n`.repeat(50));
      proto.push(`f${i} ---644 0 0 ${join(work, `f${i}`)}`);
    }
    writeFileSync(join(work, 'blob'), Buffer.alloc(8 << 20, 7));
    proto.push('$', `blob ---644 0 0 ${join(work, 'blob')}`, '$');
    writeFileSync(join(work, 'proto'), `${proto.join('\n')}\n`);
    const img = join(work, 'image');
    execFileSync('truncate', ['-s', '1T', img]);
    execFileSync('mkfs.xfs', ['-q', '-f', '-K', '-p', join(work, 'proto'), img], {
      stdio: 'inherit',
    });
    renameSync(img, image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return image;
}
