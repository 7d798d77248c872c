// Benchmark: `diskube backup` of one ~1 GiB DSL-built GPT disk (ext4 + NTFS, ~400 MiB of file
// data) read from the raw image and from a qcow2 made by `qemu-img convert`. Runs the built
// binary, alternating raw and qcow2, and prints the median wall time of each and their ratio.
//
//   node apps/e2e/scripts/bench-container-backup.mjs [runs=5] [--compress none|zstd]
//
// Target: the qcow2 path under 1.3x the raw path. The machine may be shared: note `uptime`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildImage } from '@diskube/mkimage';

const require = createRequire(import.meta.url);
const DISKUBE = join(dirname(require.resolve('@diskube/cli/package.json')), 'dist/cli.js');

const runs = Number(process.argv[2] ?? 5);
const compress = process.argv.includes('--compress')
  ? process.argv[process.argv.indexOf('--compress') + 1]
  : 'zstd';

const SPEC = `disk 1G gpt
  partition 560M ext4 label=root
    prefill random seed=61
    file /var/lib/db.bin 160M random seed=62
    file /var/log/big.log 60M text
    files /usr/share/many 400 small
    file /stale 40M random seed=63
    delete /stale
  partition rest ntfs cluster=4K label=data
    prefill random seed=64
    file /Users/a/video.bin 140M random seed=65
    file /Users/a/notes.txt 30M text
    files /Users/a/many 300 small`;

const { image } = await buildImage(SPEC);
const dir = mkdtempSync(join(tmpdir(), 'diskube-bench-container-'));
const qcow2 = join(dir, 'disk.qcow2');
execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', image, qcow2]);

function backup(input) {
  const out = join(dir, 'b.dkb');
  rmSync(out, { force: true });
  const started = performance.now();
  const r = spawnSync(
    process.execPath,
    [DISKUBE, 'backup', input, out, '--compress', compress, '--json'],
    {
      encoding: 'utf8',
    },
  );
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`backup of ${input} failed: ${r.stderr}`);
  return { seconds, result: JSON.parse(r.stdout) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`uptime before: ${execFileSync('uptime').toString().trim()}`);
const first = backup(image);
console.log(
  `used bytes stored: ${first.result.usedBytes ?? JSON.stringify(first.result).slice(0, 200)}`,
);
backup(qcow2); // warm the page cache for both files
const times = { raw: [], qcow2: [] };
for (let i = 0; i < runs; i++) {
  times.raw.push(backup(image).seconds);
  times.qcow2.push(backup(qcow2).seconds);
}
console.log(`uptime after: ${execFileSync('uptime').toString().trim()}`);
const raw = median(times.raw);
const q = median(times.qcow2);
console.log(`compress=${compress} runs=${runs}`);
console.log(`raw   median ${raw.toFixed(2)} s  [${times.raw.map((t) => t.toFixed(2)).join(', ')}]`);
console.log(`qcow2 median ${q.toFixed(2)} s  [${times.qcow2.map((t) => t.toFixed(2)).join(', ')}]`);
console.log(`ratio qcow2/raw ${(q / raw).toFixed(3)} (target < 1.3)`);
if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
