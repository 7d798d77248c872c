#!/usr/bin/env node

// The fleet benchmark (issue 10): a DSL-built template VM, clones derived from it with their own
// data and different deleted garbage, then days of changes; every disk is backed up by each peer
// (separate .dkb snapshots + incrementals, the diskube repository on a directory and on S3 at
// several chunk sizes, borg 2, restic, zstd -3 of the raw image), and the issue's target ratios
// are computed from one run. Writes a Markdown report to RESULTS-fleet.md.
//
//   node src/fleet.mjs [--scale quick|full] [--clones N] [--days N] [--runs N]
//                      [--chunk-sizes 64K,256K,1M,4M] [--peers dkb,repo,s3,borg,restic,zstd]
//                      [--work DIR] [--keep] [--no-cache] [--stream] [--out FILE]
//
// FLEET_SCALE=full in the environment does the same as --scale full.
//
// Images are built when their stage comes. Quick-scale images go to the shared image cache
// (apps/bench/.cache/images) and stay for the next run. With --stream (the default at full
// scale, whose 61 images would take ~140 GiB) they are built in the work folder and each is
// deleted once every peer has backed it up, so the disk holds one clone image at a time.

import { existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage } from '@diskube/mkimage';
import { q, run, sh, timeInterleaved, timeVerbose, toolVersion, writeReport } from './exec.mjs';
import { cloneLines, dayLines, FLEET_SCALES, render, templateSpec } from './fleet-specs.mjs';
import { markdownTable, met, mib, secs } from './table.mjs';

/** @typedef {import('./exec.mjs').Timing} Timing */

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    scale: { type: 'string', default: process.env.FLEET_SCALE ?? 'quick' },
    clones: { type: 'string' },
    days: { type: 'string' },
    runs: { type: 'string', default: '3' },
    'chunk-sizes': { type: 'string', default: '64K,256K,1M,4M' },
    // 4M is the S3 backend's default chunk size, 1M the directory's.
    's3-chunk-sizes': { type: 'string', default: '1M,4M' },
    peers: { type: 'string', default: 'dkb,repo,s3,borg,restic,zstd' },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
    // The fleet's repository backups without diskube's client cache (the before of the digest cache).
    'no-cache': { type: 'boolean', default: false },
    stream: { type: 'boolean' },
    out: { type: 'string' },
  },
});
const noCache = args['no-cache'] ? ' --no-cache' : '';
const base = FLEET_SCALES[args.scale ?? 'quick'];
if (!base) throw new Error(`--scale: one of ${Object.keys(FLEET_SCALES).join(', ')}`);
const scale = {
  ...base,
  ...(args.clones ? { clones: Number(args.clones) } : {}),
  ...(args.days ? { days: Number(args.days) } : {}),
};
if (!Number.isInteger(scale.clones) || scale.clones < 1) throw new Error('--clones: 1 or more');
if (!Number.isInteger(scale.days) || scale.days < 0) throw new Error('--days: 0 or more');
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs: a positive integer');
const peers = new Set((args.peers ?? '').split(',').filter(Boolean));
const chunkSizes = (args['chunk-sizes'] ?? '').split(',').filter(Boolean);
/** `64K` → 65536 (`diskube repo init --chunk-size` takes bytes). */
const chunkBytes = (/** @type {string} */ label) => {
  const m = /^(\d+)([KM]?)$/i.exec(label);
  if (!m) throw new Error(`--chunk-sizes: ${label} is not like 64K or 1M`);
  return Number(m[1]) * ({ K: 1024, M: 2 ** 20 }[m[2]?.toUpperCase() ?? ''] ?? 1);
};
for (const cs of chunkSizes) chunkBytes(cs);
const s3ChunkSizes = (args['s3-chunk-sizes'] ?? '').split(',').filter(Boolean);
for (const cs of s3ChunkSizes) chunkBytes(cs);

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const cli = join(dirname(require.resolve('@diskube/cli/package.json')), 'dist', 'cli.js');
const diskube = `${q(process.execPath)} ${q(cli)}`;
const work = args.work ?? join(tmpdir(), `diskube-fleet-${scale.name}`);
const w = (/** @type {string} */ name) => join(work, name);
// diskube's client cache (manifests, block digest tables) lives in the work folder, so every run
// starts from none and the user's own cache is left alone.
process.env.DISKUBE_CACHE_DIR = w('diskube-cache');
const MiB = 2 ** 20;
const started = performance.now();
const loadBefore = loadavg();
const log = (/** @type {string} */ m) =>
  process.stderr.write(`[fleet ${((performance.now() - started) / 1000).toFixed(0)}s] ${m}\n`);

const tools = ['zstd', 'partclone.ext4', 'partclone.ntfs', 'dd', 'du', 'cmp'];
if (peers.has('borg')) tools.push('borg2');
if (peers.has('restic')) tools.push('restic');
for (const tool of tools) {
  const found = await run('sh', ['-c', `command -v ${tool}`], { allowFail: true });
  if (found.code !== 0) throw new Error(`the fleet benchmark needs ${tool} on PATH`);
}
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

// ---- The fleet -------------------------------------------------------------------------------
const stream = args.stream ?? scale.name === 'full';
const cacheDir = stream
  ? w('images')
  : (process.env.DISKUBE_IMAGE_CACHE ?? join(here, '..', '.cache', 'images'));
const template = templateSpec(scale);
const treePackages = template.root.filter((l) => l.startsWith('files /usr/bin/')).length;
const templateUsed = template.tree.bytes + scale.ntfsDataMiB * MiB;
let builds = 0;
const buildsTotal = 1 + scale.clones * (1 + scale.days);
/** Seconds spent building images (not part of any peer's wall). */
let buildSeconds = 0;
const build = async (/** @type {string} */ text) => {
  const t = performance.now();
  const b = await buildImage(text, { cacheDir });
  buildSeconds += (performance.now() - t) / 1000;
  log(`image ${++builds}/${buildsTotal} in ${secs((performance.now() - t) / 1000)}`);
  return b;
};
log(
  `template: ${template.tree.files} files in ${template.tree.dirs} directories, ${mib(template.tree.bytes)} (${mib(template.tree.textBytes)} text) on ext4`,
);
const templateImage = (await build(template.text)).image;
/** @type {Array<{ name: string, specs: string[], uniqueBytes: number, changedBytes: number[] }>} */
const vms = [];
for (let k = 0; k < scale.clones; k++) {
  const clone = cloneLines(scale, k);
  const root = [...template.root, ...clone.root];
  const ntfs = [...template.ntfs, ...clone.ntfs];
  const specs = [render(scale, root, ntfs)];
  /** @type {number[]} */
  const changedBytes = [];
  for (let d = 1; d <= scale.days; d++) {
    const day = dayLines(scale, k, d, templateUsed + clone.uniqueBytes, treePackages);
    root.push(...day.root);
    ntfs.push(...day.ntfs);
    specs.push(render(scale, root, ntfs));
    changedBytes.push(day.changedBytes);
  }
  vms.push({
    name: `vm-${String(k).padStart(2, '0')}`,
    specs,
    uniqueBytes: clone.uniqueBytes,
    changedBytes,
  });
}
/** The disk of VM `k` at stage `d` (0 = the clone, 1… = after each day), built when first asked. */
const imageOf = async (/** @type {number} */ k, /** @type {number} */ d) =>
  (await build(/** @type {string} */ (vms[k]?.specs[d]))).image;
/** With --stream, a disk every peer has backed up is deleted (vm-00's clone stays for the one-VM runs). */
const done = async (
  /** @type {number} */ k,
  /** @type {number} */ d,
  /** @type {string} */ image,
) => {
  if (!stream || (k === 0 && d === 0)) return;
  await rm(image, { force: true });
  await rm(`${image}.manifest.json`, { force: true });
};

// ---- Helpers ---------------------------------------------------------------------------------
const size = async (/** @type {string} */ path) => (await stat(path)).size;
const duBytes = async (/** @type {string} */ dir) =>
  Number((await run('du', ['-sb', dir])).stdout.split(/\s/)[0]);
// Is the repository CLI there yet (issue 10 is being built while this benchmark is)?
// (commander prints the general help, exit 0, for `repo --help` when there is no such command)
const cliHelp = await run(process.execPath, [cli, '--help'], { allowFail: true });
const repoCli = /^\s+repo\b/m.test(cliHelp.stdout);
if (!repoCli) log('diskube repo: not available in this build; repository rows are skipped');

// The S3 server: the repository package's Swift script, when present.
const swiftScript = join(
  here,
  '..',
  '..',
  '..',
  'packages',
  'repository',
  'scripts',
  'swift-s3.mjs',
);
/** @type {any} */
let swift = null;
/** @type {Record<string, string>} */
let s3env = {};
/** @type {string | null} */
let s3Problem = null;
if (peers.has('s3') && repoCli) {
  if (!existsSync(swiftScript)) s3Problem = 'packages/repository/scripts/swift-s3.mjs not found';
  else {
    try {
      const mod = await import(pathToFileURL(swiftScript).href);
      swift = await mod.startSwift({ dir: w('swift') });
      s3env = {
        AWS_ACCESS_KEY_ID: swift.accessKeyId,
        AWS_SECRET_ACCESS_KEY: swift.secretAccessKey,
        AWS_REGION: swift.region,
        AWS_ENDPOINT_URL_S3: swift.endpoint,
      };
      log(`Swift s3api up at ${swift.endpoint} in ${secs(swift.coldStartMs / 1000)}`);
    } catch (err) {
      s3Problem = `Swift did not start: ${/** @type {Error} */ (err).message.slice(0, 200)}`;
    }
  }
}
const stopSwift = async () => {
  if (swift) await swift.destroy().catch(() => {});
  swift = null;
};
process.once('SIGINT', () => stopSwift().then(() => process.exit(130)));

/** Creates an S3 bucket through the repository package's AWS SDK. */
const makeBucket = async (/** @type {string} */ bucket) => {
  const repoRequire = createRequire(join(here, '..', '..', '..', 'packages', 'repository', 'x.js'));
  const { S3Client, CreateBucketCommand } = await import(
    pathToFileURL(repoRequire.resolve('@aws-sdk/client-s3')).href
  );
  const client = new S3Client({
    endpoint: swift.endpoint,
    region: swift.region,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
};

/**
 * A peer stores every disk of the fleet, stage by stage (stage 0 = the clones, 1… = the days).
 * `store` backs up one disk and returns nothing; `stored` measures the peer's total bytes.
 *
 * @typedef {object} Peer
 * @property {string} name
 * @property {() => Promise<void>} [init]
 * @property {(vm: number, stage: number, image: string) => Promise<void>} store
 * @property {() => Promise<number>} stored
 * @property {Record<string, string>} [env]
 */

/** @type {Peer[]} */
const fleetPeers = [];
if (peers.has('dkb')) {
  const dir = w('dkb');
  const file = (/** @type {number} */ k, /** @type {number} */ d) =>
    join(dir, `vm${k}-day${d}.dkb`);
  fleetPeers.push({
    name: '.dkb snapshot + incrementals',
    init: () => mkdir(dir, { recursive: true }).then(() => {}),
    store: async (k, d, image) => {
      const parent = d > 0 ? ` --base ${q(file(k, d - 1))}` : '';
      await sh(`${diskube} backup ${q(image)} ${q(file(k, d))}${parent} -f --json > /dev/null`);
    },
    stored: () => duBytes(dir),
  });
}
/** A clone's first backup into a repository is made against the template's snapshot. */
const againstTemplate = (/** @type {number} */ d) => (d === 0 ? ' --parent template@latest' : '');
/** @type {Map<string, string>} repository location per peer name */
const repoOf = new Map();
if (peers.has('repo') && repoCli) {
  for (const cs of chunkSizes) {
    const repo = w(`repo-${cs}`);
    const name = `repository, directory, ${cs} chunks`;
    repoOf.set(name, repo);
    fleetPeers.push({
      name,
      // The template goes in first (as an operator's golden image would), and each clone's
      // first backup is made against it: its chunks become patches where the clone differs.
      init: () =>
        sh(
          `${diskube} repo init ${q(repo)} --chunk-size ${chunkBytes(cs)} > /dev/null && ${diskube} backup ${q(templateImage)} --repo ${q(repo)} --name template${noCache} --json > /dev/null`,
        ).then(() => {}),
      store: (k, d, image) =>
        sh(
          `${diskube} backup ${q(image)} --repo ${q(repo)} --name vm-${k}${againstTemplate(d)}${noCache} --json > /dev/null`,
        ).then(() => {}),
      stored: () => duBytes(repo),
    });
  }
}
const server = peers.has('s3') && repoCli ? swift : null;
for (const cs of server ? s3ChunkSizes : []) {
  const bucket = `fleet-${cs.toLowerCase()}`;
  const repo = `s3://${bucket}/repo`;
  const name = `repository, S3 (Swift s3api on loopback), ${cs} chunks`;
  repoOf.set(name, repo);
  fleetPeers.push({
    name,
    env: s3env,
    init: async () => {
      await makeBucket(bucket);
      await run(
        'bash',
        [
          '-c',
          `${diskube} repo init ${q(repo)} --chunk-size ${chunkBytes(cs)} --s3-endpoint ${q(server.endpoint)} > /dev/null && ${diskube} backup ${q(templateImage)} --repo ${q(repo)} --s3-endpoint ${q(server.endpoint)} --name template${noCache} --json > /dev/null`,
        ],
        { env: s3env },
      );
    },
    store: (k, d, image) =>
      run(
        'bash',
        [
          '-c',
          `${diskube} backup ${q(image)} --repo ${q(repo)} --s3-endpoint ${q(server.endpoint)} --name vm-${k}${againstTemplate(d)}${noCache} --json > /dev/null`,
        ],
        { env: s3env },
      ).then(() => {}),
    stored: async () => {
      const r = await run(
        'bash',
        ['-c', `${diskube} stats --repo ${q(repo)} --s3-endpoint ${q(server.endpoint)} --json`],
        { env: s3env },
      );
      return storedFromStats(JSON.parse(r.stdout));
    },
  });
}
if (peers.has('borg')) {
  const repo = w('borg');
  fleetPeers.push({
    name: 'borg 2 (zstd,3, no encryption)',
    env: { BORG_REPO: repo, BORG_BASE_DIR: w('borg-home') },
    init: () =>
      sh(`BORG_REPO=${q(repo)} BORG_BASE_DIR=${q(w('borg-home'))} borg2 rcreate -e none`).then(
        () => {},
      ),
    store: (k, d, image) =>
      sh(
        `BORG_REPO=${q(repo)} BORG_BASE_DIR=${q(w('borg-home'))} borg2 create --compression zstd,3 vm${k}-day${d} ${q(image)}`,
      ).then(() => {}),
    stored: () => duBytes(repo),
  });
}
if (peers.has('restic')) {
  const repo = w('restic');
  const env = `RESTIC_PASSWORD=fleet RESTIC_CACHE_DIR=${q(w('restic-cache'))} restic -q -r ${q(repo)}`;
  fleetPeers.push({
    name: 'restic (compression auto)',
    init: () => sh(`${env} init`).then(() => {}),
    store: (k, _d, image) => sh(`${env} backup --host vm-${k} ${q(image)}`).then(() => {}),
    stored: () => duBytes(repo),
  });
}
if (peers.has('zstd')) {
  let total = 0;
  fleetPeers.push({
    name: 'zstd -3 of the raw image',
    store: async (_k, _d, image) => {
      await sh(`zstd -3 -T0 -q -f ${q(image)} -o ${q(w('raw.zst'))}`);
      total += await size(w('raw.zst'));
      await rm(w('raw.zst'), { force: true });
    },
    stored: async () => total,
  });
}

/** Total stored bytes from `diskube stats --json`, whatever the field is called. */
function storedFromStats(/** @type {any} */ s) {
  const t = s.total ?? s;
  const v = t.storedBytes ?? t.stored ?? t.bytesStored;
  if (typeof v !== 'number')
    throw new Error(`diskube stats: no stored bytes in ${JSON.stringify(s).slice(0, 200)}`);
  return v;
}

// ---- Back up the fleet, stage by stage ---------------------------------------------------------
/** @type {Record<string, { stages: Array<{ bytes: number, seconds: number }>, error?: string }>} */
const results = {};
for (const p of fleetPeers) {
  results[p.name] = { stages: [] };
  try {
    await p.init?.();
  } catch (err) {
    /** @type {any} */ (results[p.name]).error = /** @type {Error} */ (err).message.slice(0, 300);
    log(`${p.name}: ${/** @type {any} */ (results[p.name]).error}`);
  }
}
for (let d = 0; d <= scale.days; d++) {
  /** @type {Record<string, number>} */
  const seconds = {};
  for (const [k, vm] of vms.entries()) {
    const image = await imageOf(k, d);
    // Interleaved: every peer backs up this disk before the next disk, so load hits all alike.
    for (const p of fleetPeers) {
      const r = /** @type {(typeof results)[string]} */ (results[p.name]);
      if (r.error) continue;
      const t = performance.now();
      try {
        await p.store(k, d, image);
      } catch (err) {
        r.error = `${vm.name} stage ${d}: ${/** @type {Error} */ (err).message.slice(0, 300)}`;
        log(`${p.name}: ${r.error}`);
      }
      seconds[p.name] = (seconds[p.name] ?? 0) + (performance.now() - t) / 1000;
    }
    await done(k, d, image);
  }
  for (const p of fleetPeers) {
    const r = /** @type {(typeof results)[string]} */ (results[p.name]);
    if (r.error) continue;
    const bytes = await p.stored();
    r.stages.push({ bytes, seconds: seconds[p.name] ?? 0 });
    log(`stage ${d}: ${p.name} ${mib(bytes)} (${secs(seconds[p.name] ?? 0)})`);
  }
}

// ---- One VM: diskube against partclone + zstd, backup and restore -------------------------------
log('one VM: partitions extracted for partclone');
// vm-00's clone disk (kept by --stream; from the image cache otherwise).
const { image: one, manifest } = await buildImage(/** @type {string} */ (vms[0]?.specs[0]), {
  cacheDir,
});
const parts = manifest.partitions.map((p) => ({ ...p, file: w(`part${p.index}.img`) }));
for (const p of parts) {
  await sh(
    `dd if=${q(one)} of=${q(p.file)} bs=1M skip=${p.offset} count=${p.size} iflag=skip_bytes,count_bytes conv=sparse status=none`,
  );
}
const pcTool = (/** @type {string} */ fs) => (fs === 'ntfs' ? 'partclone.ntfs' : 'partclone.ext4');
const partcloneBackup = parts
  .map(
    (p) =>
      `${pcTool(p.fs)} -c -q -s ${q(p.file)} -o - 2>/dev/null | zstd -3 -T0 -q -f -o ${q(`${p.file}.pc.zst`)}`,
  )
  .join(' && ');
const partcloneRestore = parts
  .map(
    (p) =>
      `zstd -dc -q ${q(`${p.file}.pc.zst`)} | ${pcTool(p.fs)} -r -W -q -s - -o ${q(`${p.file}.out`)} > /dev/null 2>&1`,
  )
  .join(' && ');
const partcloneClean = parts.map((p) => `rm -f ${q(`${p.file}.out`)}`).join('; ');
const oneDkb = w('one.dkb');
const oneRepo = w('one-repo');
const oneRepoCs = chunkSizes.includes('1M') ? '1M' : (chunkSizes[0] ?? '1M');
/** @type {Array<{ name: string, command: string, prepare?: string }>} */
const backups = [
  {
    name: 'diskube-dkb',
    command: `${diskube} backup ${q(one)} ${q(oneDkb)} -f --json > /dev/null`,
  },
  { name: 'partclone-zstd', command: partcloneBackup },
];
if (repoCli) {
  backups.push({
    name: 'diskube-repo',
    prepare: `rm -rf ${q(oneRepo)} && ${diskube} repo init ${q(oneRepo)} --chunk-size ${chunkBytes(oneRepoCs)} > /dev/null`,
    command: `${diskube} backup ${q(one)} --repo ${q(oneRepo)} --name vm-0 --json > /dev/null`,
  });
}
log('one VM: backups (interleaved)');
/** @type {Record<string, Timing>} */
let oneBackup = {};
/** @type {string | null} */
let oneError = null;
/** @type {string | null} */
let oneRepoError = null;
/** Times the commands interleaved; if one with the repository fails, again without those. */
const timeOne = async (/** @type {typeof backups} */ commands) => {
  try {
    return await timeInterleaved(commands, { runs, jsonDir: work });
  } catch (err) {
    if (!commands.some((c) => c.name.includes('repo'))) throw err;
    oneRepoError = /** @type {Error} */ (err).message.slice(0, 300);
    log(`one VM, repository: ${oneRepoError}; timing the others without it`);
    return await timeInterleaved(
      commands.filter((c) => !c.name.includes('repo')),
      { runs, jsonDir: work },
    );
  }
};
try {
  oneBackup = await timeOne(backups);
} catch (err) {
  oneError = /** @type {Error} */ (err).message.slice(0, 300);
  log(`one VM backups: ${oneError}`);
}
const restores = [
  {
    name: 'diskube-dkb-restore',
    prepare: `rm -f ${q(w('one-dkb.img'))}`,
    command: `${diskube} restore ${q(oneDkb)} ${q(w('one-dkb.img'))} -f --json > /dev/null`,
  },
  { name: 'partclone-restore', prepare: partcloneClean, command: partcloneRestore },
];
if (repoCli) {
  restores.push({
    name: 'diskube-repo-restore',
    prepare: `rm -f ${q(w('one-repo.img'))}`,
    command: `${diskube} restore --repo ${q(oneRepo)} vm-0@latest ${q(w('one-repo.img'))} --json > /dev/null`,
  });
}
/** @type {Record<string, Timing>} */
let oneRestore = {};
/** @type {Record<string, number>} */
const rss = {};
let restoredSame = 'not compared';
if (!oneError) {
  log('one VM: restores (interleaved)');
  try {
    oneRestore = await timeOne(
      oneRepoError ? restores.filter((c) => !c.name.includes('repo')) : restores,
    );
    for (const c of [...backups, ...restores]) {
      if (c.name === 'partclone-zstd' || c.name === 'partclone-restore') continue;
      if (oneRepoError && c.name.includes('repo')) continue;
      if (c.prepare) await sh(c.prepare);
      rss[c.name] = (await timeVerbose(c.command)).maxRssBytes;
    }
    if (repoCli && !oneRepoError) {
      const same = await run('cmp', ['-s', w('one-dkb.img'), w('one-repo.img')], {
        allowFail: true,
      });
      restoredSame = same.code === 0 ? 'yes' : 'NO';
    }
  } catch (err) {
    oneError = /** @type {Error} */ (err).message.slice(0, 300);
    log(`one VM restores: ${oneError}`);
  }
}

// S3 against directory speed: one VM into an empty repository on each, at each S3 chunk size
// (the directory at the same size), all interleaved. `repo init` is not timed on either.
/** @type {Record<string, { dir: Timing, s3: Timing }>} chunk size → timings */
const s3Speed = {};
if (repoCli && swift && !oneError && !oneRepoError && s3ChunkSizes.length > 0) {
  log('one VM: directory and S3 repository backups (interleaved)');
  const exports = `export ${Object.entries(s3env)
    .map(([k, v]) => `${k}=${q(v)}`)
    .join(' ')}`;
  const endpoint = q(swift.endpoint);
  try {
    await makeBucket('speed');
    const t = await timeInterleaved(
      s3ChunkSizes.flatMap((cs) => [
        {
          name: `repo-dir-${cs}`,
          prepare: `rm -rf ${q(w('speed-dir'))} && ${diskube} repo init ${q(w('speed-dir'))} --chunk-size ${chunkBytes(cs)} > /dev/null`,
          command: `${diskube} backup ${q(one)} --repo ${q(w('speed-dir'))} --name vm-0 --json > /dev/null`,
        },
        {
          name: `repo-s3-${cs}`,
          // A fresh prefix per run, so the repository starts empty every time, like the directory.
          prepare: `${exports}; p=s3://speed/$(date +%s%N) && echo $p > ${q(w('speed-s3'))} && ${diskube} repo init $p --chunk-size ${chunkBytes(cs)} --s3-endpoint ${endpoint} > /dev/null`,
          command: `${exports}; ${diskube} backup ${q(one)} --repo $(cat ${q(w('speed-s3'))}) --s3-endpoint ${endpoint} --name vm-0 --no-cache --json > /dev/null`,
        },
      ]),
      { runs, jsonDir: work },
    );
    for (const cs of s3ChunkSizes) {
      s3Speed[cs] = {
        dir: /** @type {Timing} */ (t[`repo-dir-${cs}`]),
        s3: /** @type {Timing} */ (t[`repo-s3-${cs}`]),
      };
    }
  } catch (err) {
    s3Problem = `S3 speed run: ${/** @type {Error} */ (err).message.slice(0, 200)}`;
  }
}
await stopSwift();

// ---- Targets ------------------------------------------------------------------------------------
log('template snapshot (.dkb) for the "one VM" reference');
await sh(`${diskube} backup ${q(templateImage)} ${q(w('template.dkb'))} -f --json > /dev/null`);
const templateSnapshot = await size(w('template.dkb'));
const uniqueTotal = vms.reduce((n, vm) => n + vm.uniqueBytes, 0);
const changedTotal = vms.reduce((n, vm) => n + vm.changedBytes.reduce((a, b) => a + b, 0), 0);
const fleetBudget = templateSnapshot + uniqueTotal;
const NA = 'not measured: `diskube repo` is not in this build yet';
const ratio = (/** @type {number} */ a, /** @type {number} */ b) => `${(a / b).toFixed(3)} ×`;
const repoPeers = fleetPeers.filter((p) => repoOf.has(p.name) && !results[p.name]?.error);
const stageBytes = (/** @type {string} */ name, /** @type {number} */ d) =>
  results[name]?.stages[d]?.bytes ?? Number.NaN;
const finalBytes = (/** @type {string} */ name) => stageBytes(name, scale.days);
const daysBytes = (/** @type {string} */ name) => finalBytes(name) - stageBytes(name, 0);
const borgName = fleetPeers.find((p) => p.name.startsWith('borg'))?.name;
const resticName = fleetPeers.find((p) => p.name.startsWith('restic'))?.name;
const blockBits = Math.ceil((scale.diskMiB * MiB) / 4096 / 8);
const rssBudget = 300 * MiB + blockBits;

/** @type {string[][]} */
const targets = [];
const perRepo = (
  /** @type {(name: string) => [string, boolean]} */ f,
  /** @type {string} */ what,
) => {
  if (repoPeers.length === 0) targets.push([what, NA, '—']);
  for (const p of repoPeers) {
    const [text, ok] = f(p.name);
    targets.push([`${what} (${p.name.replace('repository, ', '')})`, text, met(ok)]);
  }
};
perRepo((n) => {
  const b = stageBytes(n, 0);
  return [`${mib(b)} vs ${mib(fleetBudget)}: ${ratio(b, fleetBudget)}`, b <= 1.2 * fleetBudget];
}, `all ${scale.clones} VMs ≤ 1.2 × (one VM's snapshot + clones' unique data)`);
perRepo((n) => {
  const b = daysBytes(n);
  return [`${mib(b)} vs ${mib(changedTotal)}: ${ratio(b, changedTotal)}`, b <= 1.25 * changedTotal];
}, `${scale.days} days ≤ 1.25 × data really changed`);
if (borgName && resticName) {
  perRepo((n) => {
    const b = finalBytes(n);
    const borg = finalBytes(borgName);
    const restic = finalBytes(resticName);
    return [`${mib(b)} vs borg ${mib(borg)}, restic ${mib(restic)}`, b < borg && b < restic];
  }, 'repository stores less than borg and restic (after the days)');
} else {
  targets.push([
    'repository stores less than borg and restic (after the days)',
    'not measured: borg and restic are not both among `--peers` in this run',
    '—',
  ]);
}
const t = (/** @type {Record<string, Timing>} */ r, /** @type {string} */ k) =>
  r[k]?.median ?? Number.NaN;
if (oneError) targets.push(['one VM backup / restore', `failed: ${oneError}`, '**NO**']);
if (oneRepoError) targets.push(['one VM, repository', `failed: ${oneRepoError}`, '**NO**']);
if (repoCli && !oneError && !oneRepoError) {
  const r = t(oneBackup, 'diskube-repo');
  const p = t(oneBackup, 'partclone-zstd');
  targets.push([
    'one VM into the local repository ≤ partclone | zstd -3',
    `${secs(r)} vs ${secs(p)}: ${ratio(r, p)}`,
    met(r <= p),
  ]);
  const rr = t(oneRestore, 'diskube-repo-restore');
  const pr = t(oneRestore, 'partclone-restore');
  targets.push([
    'restore from the repository ≤ 0.5 × partclone restore',
    `${secs(rr)} vs ${secs(pr)}: ${ratio(rr, pr)}`,
    met(rr <= 0.5 * pr),
  ]);
  for (const k of ['diskube-repo', 'diskube-repo-restore']) {
    const v = rss[k] ?? Number.NaN;
    targets.push([
      `peak RSS of ${k.endsWith('restore') ? 'restore' : 'backup'} ≤ 300 MiB + 1 bit per block (${mib(rssBudget)})`,
      mib(v),
      met(v <= rssBudget),
    ]);
  }
} else if (!repoCli) {
  targets.push(['one VM into the local repository ≤ partclone | zstd -3', NA, '—']);
  targets.push(['restore from the repository ≤ 0.5 × partclone restore', NA, '—']);
  targets.push(['peak RSS ≤ 300 MiB + 1 bit per block', NA, '—']);
}
for (const [cs, { dir, s3 }] of Object.entries(s3Speed)) {
  const ratioS3 = dir.median / s3.median;
  targets.push([
    `S3 on loopback ≥ 50 % of the directory speed (one VM, empty repository, ${cs} chunks on both)`,
    `${secs(s3.median)} vs ${secs(dir.median)}: ${(ratioS3 * 100).toFixed(0)} %`,
    met(ratioS3 >= 0.5),
  ]);
}
if (s3Speed['1M'] && s3Speed['4M']) {
  // What `repo init` gives when no chunk size is named: 1 MiB on a directory, 4 MiB on S3.
  const dir = s3Speed['1M'].dir.median;
  const s3 = s3Speed['4M'].s3.median;
  targets.push([
    'S3 on loopback ≥ 50 % of the directory speed (one VM, empty repository, default chunk sizes: S3 4M, directory 1M)',
    `${secs(s3)} vs ${secs(dir)}: ${((dir / s3) * 100).toFixed(0)} %`,
    met(dir / s3 >= 0.5),
  ]);
}
if (Object.keys(s3Speed).length === 0) {
  targets.push([
    'S3 on loopback ≥ 50 % of the directory speed',
    repoCli ? `not measured: ${s3Problem ?? 'S3 peer not selected'}` : NA,
    '—',
  ]);
}
targets.push([
  'peak RSS with a 1 TiB sparse disk and > 1 million chunks',
  'measured by bench:repo-scale (RESULTS-repo-scale.md), not here',
  '—',
]);

// ---- Report -------------------------------------------------------------------------------------
const fleetTable = markdownTable(
  [
    'peer',
    `${scale.clones} clones: stored`,
    'wall',
    `+ ${scale.days} days: stored`,
    'wall',
    'total stored',
    `clones / (snapshot + unique)`,
    'days / changed data',
  ],
  fleetPeers
    .map((p) => {
      const r = /** @type {(typeof results)[string]} */ (results[p.name]);
      if (r.error) return [p.name, `failed: ${r.error}`, '', '', '', '', '', ''];
      const first = r.stages[0];
      const daysWall = r.stages.slice(1).reduce((n, s) => n + s.seconds, 0);
      return [
        p.name,
        mib(first?.bytes ?? Number.NaN),
        secs(first?.seconds ?? Number.NaN),
        mib(daysBytes(p.name)),
        secs(daysWall),
        mib(finalBytes(p.name)),
        ratio(first?.bytes ?? Number.NaN, fleetBudget),
        ratio(daysBytes(p.name), changedTotal),
      ];
    })
    .concat(
      // Keep the repository rows visible, so a reader sees what is missing.
      repoCli
        ? []
        : [['diskube repository (directory and S3, every chunk size)', NA, '', '', '', '', '', '']],
    ),
);
const perDay = markdownTable(
  ['stage', 'data really changed', ...fleetPeers.map((p) => p.name)],
  Array.from({ length: scale.days + 1 }, (_, d) => [
    d === 0 ? 'clones' : `day ${d}`,
    d === 0
      ? `${mib(uniqueTotal)} unique`
      : mib(vms.reduce((n, vm) => n + (vm.changedBytes[d - 1] ?? 0), 0)),
    ...fleetPeers.map((p) => {
      const s = results[p.name]?.stages;
      if (!s?.[d]) return '—';
      const b = s[d].bytes - (d > 0 ? (s[d - 1]?.bytes ?? 0) : 0);
      return `+${mib(b)} (${secs(s[d].seconds)})`;
    }),
  ]),
);
const timedCell = (/** @type {Timing | undefined} */ x) =>
  x ? `${secs(x.median)} (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : '—';
const oneRows = [
  [
    'backup wall, median',
    timedCell(oneBackup['diskube-dkb']),
    repoCli ? timedCell(oneBackup['diskube-repo']) : NA,
    timedCell(oneBackup['partclone-zstd']),
  ],
  [
    'restore wall, median',
    timedCell(oneRestore['diskube-dkb-restore']),
    repoCli ? timedCell(oneRestore['diskube-repo-restore']) : NA,
    timedCell(oneRestore['partclone-restore']),
  ],
  [
    'backup / restore peak RSS',
    `${mib(rss['diskube-dkb'] ?? Number.NaN)} / ${mib(rss['diskube-dkb-restore'] ?? Number.NaN)}`,
    repoCli
      ? `${mib(rss['diskube-repo'] ?? Number.NaN)} / ${mib(rss['diskube-repo-restore'] ?? Number.NaN)}`
      : NA,
    '—',
  ],
];
const kernel = (await run('uname', ['-r'])).stdout.trim();
const versions = toolVersion;
const load = (/** @type {number[]} */ l) => l.map((x) => x.toFixed(1)).join(' / ');
const report = `# diskube fleet benchmark (${scale.name} scale)

- Date: ${new Date().toISOString()}; total run ${secs((performance.now() - started) / 1000)}, of which ${builds} image builds ${secs(buildSeconds)}${stream ? ' (`--stream`: each disk built when its stage came and deleted once every peer had it)' : ''}
- Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, ${mib(totalmem())} RAM, Linux ${kernel}, Node ${process.version}; load average at start ${load(loadBefore)}, at end ${load(loadavg())} (other jobs shared the machine when above ~1: wall times are noisy)
- Tools: ${await versions('borg2 --version')}; ${await versions('restic version')}; ${await versions('zstd --version')}; ${await versions('partclone.ext4 -v')}
- Fleet (all built by @diskube/mkimage: a clone is the template's spec plus its own lines, a day is the previous spec plus that day's lines, so a clone differs from the template only in the blocks its lines touch): ${mib(scale.diskMiB * MiB)} GPT disks, ext4 root ${mib(scale.rootMiB * MiB)} holding an OS-like tree of ${template.tree.files} files in ${template.tree.dirs} directories (${mib(template.tree.bytes)}, ${mib(template.tree.textBytes)} of it text), NTFS data partition with ${mib(scale.ntfsDataMiB * MiB)}. ${scale.clones} clones, each with its own configs, logs and a ${mib(scale.ownMiB * MiB * 0.75)} database file; ${scale.bigClones} of them also ${mib(scale.bigUniqueMiB * MiB)} of unique data; each wrote and deleted ${mib(scale.garbageMiB * MiB)} (ext4) + ${mib((scale.garbageMiB / 4) * MiB)} (NTFS) of random garbage of its own. Then ${scale.days} days, each changing about ${scale.dayPercent} % of each VM's used bytes (database pages overwritten in place, new logs, a template package directory deleted, an NTFS document replaced). Clone and day data is random, so raw and compressed sizes agree.
- One VM's snapshot = the template's \`.dkb\` snapshot: ${mib(templateSnapshot)}. Clones' unique data (sum): ${mib(uniqueTotal)}. Data really changed over the days (sum of bytes written): ${mib(changedTotal)}.
- Stored bytes: \`du -sb\` of each repository directory (borg, restic, diskube directory repository), the sum of \`.dkb\` files, the sum of \`zstd -3 -T0\` outputs of every raw image at every stage; S3: \`diskube stats --json\`. Walls are single runs per disk, summed; every peer backs up one disk before the next disk (interleaved). The diskube repositories also hold the template (backed up first as VM \`template\`, not timed, its bytes counted in the clones' stage), and each clone's first backup is made with \`--parent template@latest\`, so a clone's chunks are patches over the template's where they differ; later days back up against the VM's own latest snapshot. diskube's client cache (manifests and block digest tables, \`$DISKUBE_CACHE_DIR\` in the work folder): ${noCache ? 'off (`--no-cache`)' : 'on'}.
- One-VM comparison: ${runs} interleaved runs (hyperfine when installed), median (min–max); partclone runs on the two partitions extracted beforehand with \`dd\` (not timed), its restore writes the two partitions; peak RSS from one extra run under \`/usr/bin/time -v\`. Repository one-VM runs use ${oneRepoCs} chunks; the S3 speed runs time \`backup\` alone on each backend, into a repository initialised just before (not timed), S3 with \`--no-cache\`${repoCli ? `; restored image from the repository = restored image from the .dkb (cmp): ${restoredSame}` : ''}.

## Targets

${markdownTable(['target', 'measured', 'met'], targets)}

## Whole fleet

${fleetTable}

### Per stage (bytes added, wall)

${perDay}

## One VM (${vms[0]?.name}, before the days)

${markdownTable(['', 'diskube .dkb', `diskube repository (${oneRepoCs} chunks)`, 'partclone + zstd -3 (both partitions)'], oneRows)}
${oneError ? `\nOne-VM comparison failed: ${oneError}\n` : ''}
<details><summary>Template spec (first lines)</summary>

\`\`\`
${template.text.split('\n').slice(0, 40).join('\n')}
…
\`\`\`
</details>
`;
process.stdout.write(report);
const resultsPath = args.out ?? join(here, '..', 'RESULTS-fleet.md');
await writeReport(resultsPath, report);
log(`wrote ${resultsPath}`);
if (!args.keep) await rm(work, { recursive: true, force: true });
