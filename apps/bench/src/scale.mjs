// Scale benchmark: backup, incremental and restore of a generated 16 TiB virtual disk, to show
// that peak memory does not grow with the used blocks (only the one-bit-per-block used map the
// caller hands in grows with the disk). Each phase runs in its own process so that its peak RSS
// (process.resourceUsage().maxRSS) is its own. Not part of `pnpm check`: it takes minutes.
//
//   pnpm --filter @diskube/bench bench:scale                   # 16 TiB disk, 4, 16 and 64 GiB used
//   pnpm --filter @diskube/bench bench:scale -- --used 16,256  # other used amounts (GiB)

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Bitmap } from '@diskube/bitmap';
import { openBackup, StateDigestCache, writeIncremental, writeSnapshot } from '@diskube/format';
import { restoreImage } from '@diskube/restore';
import { markdownTable } from './table.mjs';

const GiB = 2 ** 30;
const TiB = 2 ** 40;
const BLOCK = 4096;
/** Used blocks come in runs of 1 MiB spread evenly over the disk. */
const RUN_BLOCKS = 256;
const POOL_BYTES = 64 << 20;
const TEXT_BYTES = 1 << 20;

/** @param {string} name @param {string | null} fallback */
function option(name, fallback) {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? process.argv[k + 1] : fallback;
}

/** A 32-bit mix of `i` (and a salt): cheap, deterministic, well spread. */
/** @param {number} i @param {number} salt */
function hash32(i, salt = 0) {
  let h =
    (Math.imul(i >>> 0, 0x9e3779b1) ^ Math.imul(Math.floor(i / 2 ** 32) + salt, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function pools() {
  const pool = new Uint8Array(POOL_BYTES);
  const words = new Uint32Array(pool.buffer);
  let x = 2463534242;
  for (let k = 0; k < words.length; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[k] = x >>> 0;
  }
  const lines = [];
  for (let k = 0, length = 0; length < TEXT_BYTES; k++) {
    const line = `2026-11-${String(1 + (k % 28)).padStart(2, '0')}T${String(k % 24).padStart(2, '0')}:00:${String(k % 60).padStart(2, '0')}Z host-${k % 7} svc[${1000 + (k % 97)}]: request ${k * 7919} took ${k % 1000} ms status ${k % 13 === 0 ? 500 : 200}\n`;
    lines.push(line);
    length += line.length;
  }
  const text = new TextEncoder().encode(lines.join('')).subarray(0, TEXT_BYTES);
  return { pool, text };
}

/**
 * A generated disk: blocks are, by a hash of their index, 1/8 all zeros, 1/16 random (pieces
 * of a 64 MiB pool: incompressible) and the rest log-like text (compressible), each stamped with
 * its index and version. Version 2 changes 0.5 % of the blocks.
 */
/** @param {number} diskBytes @param {number} version */
function generatedSource(diskBytes, version) {
  const { pool, text } = pools();
  return {
    size: diskBytes,
    /** @param {number} offset @param {Uint8Array} dst */
    async read(offset, dst) {
      for (let at = 0; at < dst.length; at += BLOCK) {
        const i = (offset + at) / BLOCK;
        const h = hash32(i);
        const block = dst.subarray(at, at + BLOCK);
        const kind = h & 15;
        if (kind < 2) {
          block.fill(0);
          continue;
        }
        if (kind === 2) {
          const from = (hash32(i, 1) % (POOL_BYTES / BLOCK - 1)) * BLOCK;
          block.set(pool.subarray(from, from + BLOCK));
        } else {
          const from = (h >>> 4) % (TEXT_BYTES - BLOCK);
          block.set(text.subarray(from, from + BLOCK));
        }
        const v = version > 1 && hash32(i, 2) % 1000 < 5 ? version : 1;
        const view = new DataView(block.buffer, block.byteOffset, 16);
        view.setFloat64(0, i, true);
        view.setUint32(8, v, true);
      }
    },
  };
}

/** @param {number} diskBytes @param {number} usedBytes */
function usedMap(diskBytes, usedBytes) {
  const blockCount = diskBytes / BLOCK;
  const used = new Bitmap(blockCount);
  const runs = Math.max(1, Math.floor(usedBytes / BLOCK / RUN_BLOCKS));
  const stride = Math.floor(blockCount / runs);
  for (let k = 0; k < runs; k++) used.setRange(k * stride, RUN_BLOCKS);
  return used;
}

const nullWritable = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });

/** One phase, in this process; prints a JSON line. */
/** @param {string} name @param {string} work @param {number} diskBytes @param {number} usedBytes */
async function phase(name, work, diskBytes, usedBytes) {
  const started = performance.now();
  const snapPath = join(work, 'snap.dkb');
  const incPath = join(work, 'inc.dkb');
  // State digests go to a cache in the work folder, as the CLI keeps them, so the incremental
  // compares digests instead of reading the snapshot back.
  const cache = new StateDigestCache(join(work, 'cache'));
  let result;
  if (name === 'snapshot' || name === 'snapshot-null') {
    const backupId = randomBytes(16);
    const sink = name === 'snapshot' ? await cache.create(backupId.toString('hex')) : null;
    const r = await writeSnapshot({
      source: generatedSource(diskBytes, 1),
      used: usedMap(diskBytes, usedBytes),
      blockSize: BLOCK,
      out: name === 'snapshot' ? snapPath : nullWritable(),
      overwrite: true,
      backupId,
      ...(sink ? { stateDigests: sink } : {}),
    });
    await sink?.commit();
    result = { fileLength: r.fileLength, storedBlocks: r.storedBlocks, bytesRead: r.bytesRead };
  } else if (name === 'incremental') {
    const snap = await openBackup(snapPath);
    const parentDigests = await cache.open(snap);
    if (parentDigests === null) throw new Error('the snapshot left no state digests');
    try {
      const r = await writeIncremental({
        source: generatedSource(diskBytes, 2),
        used: usedMap(diskBytes, usedBytes),
        blockSize: BLOCK,
        out: incPath,
        overwrite: true,
        chain: [snap],
        parentDigests,
      });
      result = {
        fileLength: r.fileLength,
        storedBlocks: r.storedBlocks,
        bytesRead: r.bytesRead,
        parentBytesRead: r.parentBytesRead,
      };
    } finally {
      await parentDigests.close();
      await snap.close();
    }
  } else {
    const chain = [await openBackup(snapPath), await openBackup(incPath)];
    try {
      const target = {
        size: diskBytes,
        zeroed: true,
        async write() {},
        async finish() {},
        async abort() {},
      };
      const r = await restoreImage({ chain, target });
      result = { bytesRead: r.bytesRead, bytesWritten: r.bytesWritten };
    } finally {
      for (const b of chain) await b.close();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const maxRssKiB = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify({ name, seconds, maxRssKiB, ...result })}\n`);
}

async function main() {
  if (process.argv[2] === '--phase') {
    const [, , , name, work, disk, used] = process.argv;
    await phase(name ?? '', work ?? '', Number(disk), Number(used));
    return;
  }
  const diskBytes = Number(option('disk-tib', '16')) * TiB;
  const usedList = (option('used', '4,16,64') ?? '4,16,64')
    .split(',')
    .map((/** @type {string} */ g) => Number(g) * GiB);
  const root = option('work', null) ?? (await mkdtemp(join(tmpdir(), 'diskube-scale-')));
  await mkdir(root, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  const rows = [];
  const load0 = loadavg();
  const started = new Date();
  try {
    for (const usedBytes of usedList) {
      const work = join(root, `used-${usedBytes / GiB}`);
      await mkdir(work, { recursive: true });
      for (const name of ['snapshot', 'incremental', 'restore']) {
        const run = spawnSync(
          process.execPath,
          [self, '--phase', name, work, String(diskBytes), String(usedBytes)],
          { encoding: 'utf8', maxBuffer: 1 << 20 },
        );
        if (run.status !== 0) throw new Error(`${name} failed: ${run.stderr}`);
        const r = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
        rows.push({ usedBytes, ...r, load: loadavg()[0] });
        process.stderr.write(`${usedBytes / GiB} GiB used, ${name}: ${run.stdout}`);
      }
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    if (option('work', null) === null) await rm(root, { recursive: true, force: true });
  }
  const load1 = loadavg();
  const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const bitmapMiB = diskBytes / BLOCK / 8 / 2 ** 20;
  const lines = [
    '# diskube scale benchmark',
    '',
    `- Date: ${started.toISOString()}; ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, ${(totalmem() / GiB).toFixed(1)} GiB RAM, Node ${process.version}`,
    `- Load average (1/5/15 min) at start ${load0.map((l) => l.toFixed(1)).join(' / ')}, at end ${load1.map((l) => l.toFixed(1)).join(' / ')} on ${cpus().length} cores (other jobs shared the machine when above ~1).`,
    `- Disk: ${diskBytes / TiB} TiB virtual, ${BLOCK}-byte blocks (${diskBytes / BLOCK} blocks: a one-bit-per-block map is ${bitmapMiB} MiB), used blocks in 1 MiB runs spread evenly; data generated on the fly: 1/8 all-zero, 1/16 random, the rest log-like text; the incremental changes 0.5 % of the blocks.`,
    "- Each phase runs in its own process; peak RSS = `process.resourceUsage().maxRSS`. Backup and incremental hold the caller's used map (one bit per block; only its touched pages are resident); restore holds no whole-disk bitmap. The snapshot and the incremental are written to files (restore reads them), restore writes to a null target. Throughput = used bytes / wall time.",
    '',
  ];
  const table = rows.map((r) => [
    `${r.usedBytes / GiB} GiB`,
    r.name,
    `${r.seconds.toFixed(1)} s`,
    `${(r.usedBytes / r.seconds / 1e6).toFixed(0)} MB/s`,
    mib(r.maxRssKiB * 1024),
    r.fileLength !== undefined
      ? `${mib(r.fileLength)} file, ${r.storedBlocks} blocks stored`
      : `${mib(r.bytesWritten)} written, ${mib(r.bytesRead)} read`,
  ]);
  lines.push(
    markdownTable(
      ['used', 'phase', 'wall', 'throughput (used bytes)', 'peak RSS', 'output'],
      table,
    ),
  );
  const bound = 300 + bitmapMiB;
  const worst = Math.max(...rows.map((r) => r.maxRssKiB / 1024));
  lines.push(
    '',
    `Bound: 300 MiB + ${bitmapMiB} MiB (one bit per block) = ${bound} MiB; worst peak ${worst.toFixed(1)} MiB: ${worst <= bound ? 'met' : '**NOT met**'}.`,
    '',
  );
  const out = join(fileURLToPath(new URL('..', import.meta.url)), 'RESULTS-scale.md');
  await writeFile(out, lines.join('\n'));
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
