// Changed-block tracking benchmark: an incremental of a qcow2 driven by QEMU's persistent dirty
// bitmap against one that compares every used block by digest. A 4 GiB GPT disk (ext4 plus a
// 1 GiB partition of random bytes no driver claims, so it is kept whole) gets a bitmap, a base
// backup, then writes through qemu-io covering `--change` percent of the disk inside the kept
// partition. Not part of `pnpm check`.
//
//   node apps/bench/src/dirty-bitmap.mjs [--change 1] [--size 4G]

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { backup } from 'diskube/node';
import { markdownTable } from './table.mjs';

/** @param {string} name @param {string} fallback */
function option(name, fallback) {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? (process.argv[k + 1] ?? fallback) : fallback;
}

const MiB = 2 ** 20;
const changePercent = Number(option('change', '1'));
const size = option('size', '4G');
const spec = `disk ${size} gpt
  partition 1G raw
    prefill random seed=401
  partition rest ext4 label=root
    file /etc/hostname "vm-cbt"
    file /var/lib/data.bin 256M random seed=402`;

const { image, manifest } = await buildImage(spec);
const raw = /** @type {{ offset: number, size: number }} */ (manifest.partitions[0]);
const dir = await mkdtemp(join(tmpdir(), 'diskube-cbt-bench-'));
try {
  const qcow = join(dir, 'vm.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', image, qcow]);
  execFileSync('qemu-img', ['bitmap', '--add', '--enable', qcow, 'cbt']);
  const base = join(dir, 'base.dkb');
  const full = await backup({ image: qcow, out: base, dirtyBitmap: 'cbt' });

  // Writes of 1 MiB spread evenly over the kept partition, `changePercent` of the whole disk.
  const diskBytes = full.imageBytes;
  const writes = Math.max(1, Math.round((diskBytes * changePercent) / 100 / MiB));
  const stride = Math.floor(raw.size / MiB / writes) * MiB;
  const commands = [];
  for (let i = 0; i < writes; i++) {
    commands.push('-c', `write -P ${(i % 250) + 1} ${raw.offset + i * stride} ${MiB}`);
  }
  execFileSync('qemu-io', [...commands, qcow], { stdio: 'ignore', maxBuffer: 1 << 26 });

  /** @param {string} name @param {Record<string, unknown>} extra */
  async function timed(name, extra) {
    const started = performance.now();
    const result = await backup({ image: qcow, out: join(dir, `${name}.dkb`), base, ...extra });
    return { name, seconds: (performance.now() - started) / 1000, result };
  }
  const rows = [];
  for (const run of [
    await timed('dirty bitmap', { dirtyBitmap: 'cbt' }),
    await timed('digests', {}),
  ]) {
    rows.push([
      run.name,
      `${(run.result.bytesRead / MiB).toFixed(1)} MiB`,
      `${((100 * run.result.bytesRead) / full.usedBytes).toFixed(2)} %`,
      String(run.result.changedBlocks),
      `${(run.result.fileLength / MiB).toFixed(1)} MiB`,
      run.seconds.toFixed(2),
    ]);
  }
  console.log(
    `${size} disk, ${(full.usedBytes / MiB).toFixed(0)} MiB used, ${writes} MiB written through qemu-io (${changePercent} % of the disk)\n`,
  );
  console.log(
    markdownTable(['incremental', 'read', 'of used', 'changed blocks', 'stored', 'seconds'], rows),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
