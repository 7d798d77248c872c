// Round trips against a remote store (issue 10): every repository operation on a small fleet,
// through a local directory backend that waits `--latency` ms before each request, as an S3
// endpoint across a network does (loopback Swift has no latency to show; its cost is CPU per
// request, which bench:fleet measures). Walls here count sequential round trips: the fewer a
// path waits one after another, the faster it is on a real object store. Not part of `pnpm check`.
//
//   pnpm --filter @diskube/bench bench:latency                       # 20 ms, 12 VMs × 6 days
//   pnpm --filter @diskube/bench bench:latency -- --latency 50 --vms 30 --days 10
//   … -- --lib /path/to/repository/dist      (another build of @diskube/repository, to compare)
//   … -- --cache                             (with the manifest cache the CLI keeps)

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Bitmap } from '@diskube/bitmap';
import { markdownTable } from './table.mjs';

/** @param {string} name @param {string} fallback */
function option(name, fallback) {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? process.argv[k + 1] : fallback;
}

const latency = Number(option('latency', '20'));
const vmCount = Number(option('vms', '12'));
const days = Number(option('days', '6'));
const lib = option('lib', '');
const useCache = process.argv.includes('--cache');
const repoLib = await import(
  lib ? pathToFileURL(join(lib, 'index.js')).href : '@diskube/repository'
);
const nodeLib = await import(
  lib ? pathToFileURL(join(lib, 'node.js')).href : '@diskube/repository/node'
);

const BLOCK = 4096;
const SIZE = 256 * 1024 * 1024;
const blocks = SIZE / BLOCK;

/** @typedef {import('@diskube/repository').Backend} Backend */

/** Deterministic bytes (xorshift), so every run backs up the same disks. */
function fill(/** @type {Uint8Array} */ bytes, /** @type {number} */ seed) {
  let x = seed | 1;
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

/**
 * A backend that waits `ms` before each request and counts them.
 * @param {Backend} inner @param {number} ms @returns {{ count: { requests: number }, backend: Backend }}
 */
function slow(inner, ms) {
  const count = { requests: 0 };
  /** @type {<T>(then: () => Promise<T>) => Promise<T>} */
  const after = async (then) => {
    count.requests++;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return then();
  };
  const wait = () => after(async () => {});
  return {
    count,
    backend: {
      ...inner,
      location: inner.location,
      // A store across a network: with --cache, backups keep block digest tables as on S3.
      remote: true,
      get: (k, s) => after(() => inner.get(k, s)),
      getRange: (k, o, l, s) => after(() => inner.getRange(k, o, l, s)),
      head: (k, s) => after(() => inner.head(k, s)),
      put: (k, d, s) => after(() => inner.put(k, d, s)),
      delete: (k, s) => after(() => inner.delete(k, s)),
      /** @param {string} p @param {AbortSignal} [s] */
      async *list(p, s) {
        await wait();
        let n = 0;
        for await (const info of inner.list(p, s)) {
          if (++n % 1000 === 0) await wait(); // one request per 1,000-key page
          yield info;
        }
      },
    },
  };
}

const work = await mkdtemp(join(tmpdir(), 'diskube-latency-'));
try {
  const dir = join(work, 'repo');
  await repoLib.initRepository(nodeLib.localBackend(dir), {});
  const opened = await repoLib.openRepository(nodeLib.localBackend(dir), {
    owner: nodeLib.processOwner(),
    // --cache: the manifest cache the CLI keeps (a build without one ignores it).
    ...(useCache && nodeLib.cacheUnder ? { cache: nodeLib.cacheUnder(join(work, 'cache')) } : {}),
  });
  const { backend, count } = slow(opened.backend, latency);
  const repo = { ...opened, backend };

  // The template: half its blocks used, in runs; clones change 1 % of their used blocks, and
  // each day 2 %, scattered, so patches chain up day after day.
  const used = new Bitmap(blocks);
  for (let b = 0; b < blocks; b += 64) used.setRange(b, 32);
  const template = new Uint8Array(SIZE);
  fill(template, 1);
  /** @type {number[]} */
  const usedList = [];
  used.forEachRun((b, n) => {
    for (let i = 0; i < n; i++) usedList.push(b + i);
  });
  /** @type {(bytes: Uint8Array, share: number, seed: number) => void} */
  const touch = (bytes, share, seed) => {
    let x = seed;
    const n = Math.round(usedList.length * share);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const b = /** @type {number} */ (usedList[x % usedList.length]);
      const at = b * BLOCK + (x % BLOCK);
      bytes[at] = /** @type {number} */ (bytes[at]) ^ 0xff;
    }
  };
  /** @type {(bytes: Uint8Array, name: string, parent?: string) => Promise<{ id: string }>} */
  const backUp = (bytes, name, parent) =>
    repoLib.backupToRepository(repo, {
      source: {
        size: bytes.length,
        async read(/** @type {number} */ offset, /** @type {Uint8Array} */ dst) {
          dst.set(bytes.subarray(offset, offset + dst.length));
        },
      },
      used,
      blockSize: BLOCK,
      name,
      ...(parent ? { parent } : {}),
    });
  /** @type {string[][]} */
  const rows = [];
  /** @type {(what: string, fn: () => Promise<unknown>) => Promise<void>} */
  const time = async (what, fn) => {
    const before = count.requests;
    const t = performance.now();
    await fn();
    rows.push([
      what,
      `${((performance.now() - t) / 1000).toFixed(2)} s`,
      String(count.requests - before),
    ]);
  };
  let templateId = '';
  await time('backup: template (first, parentless)', async () => {
    templateId = (await backUp(template, 'template')).id;
  });
  /** @type {Uint8Array[]} */
  const disks = [];
  for (let v = 0; v < vmCount; v++) {
    const bytes = template.slice();
    touch(bytes, 0.01, 1000 + v);
    disks.push(bytes);
    const what = `backup: clone ${v} with the template as its parent`;
    if (v === 0) await time(what, () => backUp(bytes, `vm${v}`, templateId));
    else await backUp(bytes, `vm${v}`, templateId);
  }
  for (let d = 1; d <= days; d++) {
    for (let v = 0; v < vmCount; v++) {
      const bytes = /** @type {Uint8Array} */ (disks[v]);
      touch(bytes, 0.02, d * 7919 + v);
      const what = `backup: vm0, day ${d} (chains ${d + 1} deep)`;
      if (v === 0 && (d === 1 || d === days)) await time(what, () => backUp(bytes, `vm${v}`));
      else await backUp(bytes, `vm${v}`);
    }
  }
  const snapshots = 1 + vmCount * (days + 1);
  const sink = {
    size: SIZE,
    zeroed: true,
    async write() {},
    async finish() {},
    async abort() {},
  };
  await time(`restore vm0@latest`, () =>
    repoLib.restoreSnapshot(repo, { snapshot: 'vm0@latest', target: sink }),
  );
  await time(`snapshots (listing ${snapshots})`, () => repoLib.listSnapshots(repo));
  await time('verify', () => repoLib.verifyRepository(repo));
  await time('verify --read-data', () => repoLib.verifyRepository(repo, { readData: true }));
  await time('stats', () => repoLib.stats(repo));
  await time('prune (nothing to delete)', () => repoLib.prune(repo));
  console.log(
    `# Round trips at ${latency} ms per request (${lib || '@diskube/repository'}${opened.cache ? ', manifest cache' : ''})\n\n` +
      `${vmCount} VMs of ${SIZE / 2 ** 20} MiB (half used) cloned from a template, ${days} days of 2 % changes each, ` +
      `${snapshots} snapshots, 1 MiB chunks, concurrency ${repo.concurrency}.\n`,
  );
  console.log(markdownTable(['operation', 'wall', 'requests'], rows));
} finally {
  await rm(work, { recursive: true, force: true });
}
