// Repository scale benchmark (issue 10): peak RSS of every repository operation on a generated
// 1 TiB disk whose used blocks fall in more than a million distinct chunks, in a local directory
// repository (on /dev/shm by default, where fsync costs nothing, so the run takes minutes rather
// than hours). Each operation runs in its own process so that its peak RSS
// (process.resourceUsage().maxRSS) is its own. Not part of `pnpm check`.
//
//   pnpm --filter @diskube/bench bench:repo-scale                 # 1 TiB, 64 KiB chunks, 1.1 M chunks
//   pnpm --filter @diskube/bench bench:repo-scale -- --chunks 2000000 --work /var/tmp/x
//   … -- --work DIR --keep --phases init,backup     then  --work DIR --phases verify,stats,prune
// (--keep leaves the repository in DIR for a later run of other phases; the whole run takes
// about 45 minutes on an idle 2-core machine)

import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bitmap } from '@diskube/bitmap';
import {
  backupToRepository,
  initRepository,
  openRepository,
  prune,
  restoreSnapshot,
  stats,
  verifyRepository,
} from '@diskube/repository';
import { localBackend, processOwner } from '@diskube/repository/node';
import { markdownTable } from './table.mjs';

const TiB = 2 ** 40;
const BLOCK = 4096;
const CHUNK = 64 * 1024;

/** @param {string} name @param {string | null} fallback */
function option(name, fallback) {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? process.argv[k + 1] : fallback;
}

/**
 * The disk: one used 4 KiB block at the start of every `stride`-th 64 KiB chunk, its bytes a
 * stamp of the block's index and the version (so every used chunk is distinct), zeros elsewhere.
 * Version 2 changes every chunk whose index is a multiple of 1,000.
 */
/** @param {number} diskBytes @param {number} stride @param {number} version */
function generated(diskBytes, stride, version) {
  const used = new Bitmap(diskBytes / BLOCK);
  const perChunk = CHUNK / BLOCK;
  for (let c = 0; c * CHUNK < diskBytes; c += stride) used.set(c * perChunk);
  return {
    used,
    source: {
      size: diskBytes,
      /** @param {number} offset @param {Uint8Array} dst */
      async read(offset, dst) {
        dst.fill(0);
        for (let at = 0; at < dst.length; at += BLOCK) {
          const i = (offset + at) / BLOCK;
          const chunk = Math.floor(i / perChunk);
          const v = version > 1 && chunk % 1000 === 0 ? version : 1;
          const view = new DataView(
            dst.buffer,
            dst.byteOffset + at,
            Math.min(BLOCK, dst.length - at),
          );
          for (let k = 0; k + 16 <= view.byteLength; k += 64) {
            view.setFloat64(k, i, true);
            view.setUint32(k + 8, v, true);
            view.setUint32(k + 12, k, true);
          }
        }
      },
    },
  };
}

/** One operation, in this process; prints a JSON line. */
/** @param {string} name @param {string} work @param {number} diskBytes @param {number} stride */
async function phase(name, work, diskBytes, stride) {
  const started = performance.now();
  const backend = localBackend(join(work, 'repo'));
  const options = { owner: processOwner(), concurrency: 8 };
  let result = {};
  if (name === 'init') {
    await initRepository(backend, { ...options, chunkSize: CHUNK });
  } else {
    const repo = await openRepository(backend, options);
    if (name === 'backup' || name === 'backup-again') {
      const { source, used } = generated(diskBytes, stride, name === 'backup' ? 1 : 2);
      const r = await backupToRepository(repo, { source, used, blockSize: BLOCK, name: 'vm' });
      result = {
        chunksRead: r.chunksRead,
        newChunks: r.newChunks,
        newPatches: r.newPatches,
        fromParent: r.chunksFromParent,
      };
    } else if (name === 'restore') {
      let written = 0;
      const r = await restoreSnapshot(repo, {
        snapshot: 'vm@latest',
        target: {
          size: diskBytes,
          zeroed: true,
          async write(_offset, bytes) {
            written += bytes.length;
          },
          async finish() {},
          async abort() {},
        },
      });
      result = { chunksFetched: r.chunksFetched, bytesWritten: written };
    } else if (name.startsWith('verify')) {
      // verify: one pass (the keys fit the default 2^20); verify-keys-2^18: at most 2^18 keys
      // held at once; verify-read-data: every chunk read and checked as well.
      const r = await verifyRepository(repo, {
        readData: name === 'verify-read-data',
        keysPerPass: name === 'verify-keys-2^18' ? 2 ** 18 : undefined,
      });
      result = {
        ok: r.ok,
        chunksReferenced: r.chunksReferenced,
        chunksRead: r.chunksRead,
        passes: r.passes,
      };
    } else if (name === 'stats') {
      const r = await stats(repo);
      result = { chunks: r.total.chunks, storedBytes: r.total.storedBytes };
    } else if (name === 'prune') {
      const r = await prune(repo);
      result = { keptChunks: r.keptChunks, deletedObjects: r.deletedObjects };
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const maxRssKiB = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify({ name, seconds, maxRssKiB, ...result })}\n`);
}

async function main() {
  if (process.argv[2] === '--phase') {
    const [, , , name, work, disk, stride] = process.argv;
    await phase(name ?? '', work ?? '', Number(disk), Number(stride));
    return;
  }
  const diskBytes = Number(option('disk-tib', '1')) * TiB;
  const wanted = Number(option('chunks', '1100000'));
  const stride = Math.max(1, Math.floor(diskBytes / CHUNK / wanted));
  const root = option('work', null) ?? (await mkdtemp(join('/dev/shm', 'diskube-repo-scale-')));
  await mkdir(root, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  const budgetMiB = 300 + diskBytes / BLOCK / 8 / 2 ** 20;
  const rows = [];
  const load0 = loadavg();
  const started = new Date();
  try {
    const all = [
      'init',
      'backup',
      'backup-again',
      'restore',
      'verify',
      'verify-keys-2^18',
      'verify-read-data',
      'stats',
      'prune',
    ];
    const wantedPhases = option('phases', null)?.split(',') ?? all;
    for (const name of wantedPhases) {
      if (!all.includes(name)) throw new Error(`--phases: ${name} is not one of ${all.join(', ')}`);
      const run = spawnSync(
        process.execPath,
        [self, '--phase', name, root, String(diskBytes), String(stride)],
        { encoding: 'utf8', maxBuffer: 1 << 20 },
      );
      if (run.status !== 0) throw new Error(`${name} failed: ${run.stderr}`);
      const r = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
      rows.push(r);
      process.stderr.write(`${name}: ${run.stdout}`);
    }
  } finally {
    if (!process.argv.includes('--keep')) await rm(root, { recursive: true, force: true });
  }
  const chunks = Math.ceil(diskBytes / CHUNK / stride);
  const lines = [
    '# diskube repository scale benchmark',
    '',
    `- Date: ${started.toISOString()}; ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}; load average at start ${load0.map((l) => l.toFixed(1)).join(' / ')}`,
    `- Disk: ${diskBytes / TiB} TiB generated, ${BLOCK}-byte blocks (used map ${(diskBytes / BLOCK / 8 / 2 ** 20).toFixed(0)} MiB), one used block at the start of every ${stride}th ${CHUNK / 1024} KiB chunk: ${chunks} distinct non-zero chunks. Local directory repository in ${root.startsWith('/dev/shm') ? 'tmpfs (/dev/shm)' : root}, ${CHUNK / 1024} KiB chunks. "backup-again" changes every used chunk whose index is a multiple of 1,000 (patches over the first snapshot).`,
    `- Budget: 300 MiB + one bit per block = ${budgetMiB.toFixed(0)} MiB.`,
    '',
    markdownTable(
      ['operation', 'wall', 'peak RSS', 'within budget', 'result'],
      rows.map((r) => {
        const { name, seconds, maxRssKiB, ...rest } = r;
        const mib = maxRssKiB / 1024;
        return [
          name,
          `${seconds.toFixed(1)} s`,
          `${mib.toFixed(0)} MiB`,
          mib <= budgetMiB ? 'yes' : '**NO**',
          Object.entries(rest)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        ];
      }),
    ),
    '',
  ];
  const out =
    option('out', null) ??
    join(fileURLToPath(new URL('..', import.meta.url)), 'RESULTS-repo-scale.md');
  await writeFile(out, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
