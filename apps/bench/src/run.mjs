#!/usr/bin/env node

// The product benchmark: diskube against partclone + zstd (and raw zstd) on a DSL-built ext4
// disk, then a 10-backup incremental chain restored with both strategies. Prints a Markdown
// report and writes it to RESULTS.md (RESULTS-quick.md with --quick).
//
//   node src/run.mjs [--quick] [--level 3] [--runs 3] [--keep] [--work DIR]

import { mkdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage } from '@diskube/mkimage';
import { backup, backupInfo, restore } from 'diskube/node';
import { q, run, sh, timeInterleaved, timeVerbose, toolVersion, writeReport } from './exec.mjs';
import { writeReference } from './ext-blocks.mjs';
import { applyStep, STEP_SIZES } from './mutate.mjs';
import { summarizeProfileDir } from './profile.mjs';
import { FULL_SPEC, QUICK_SPEC } from './specs.mjs';
import { markdownTable, met, mib, relative, secs } from './table.mjs';

/** @typedef {import('./exec.mjs').Timing} Timing */

const { values: args } = parseArgs({
  // `pnpm bench -- --quick` may hand the script a literal `--`.
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    level: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
    work: { type: 'string' },
  },
});
const quick = args.quick ?? false;
const level = Number(args.level);
const runs = Number(args.runs);
if (!Number.isInteger(level) || level < 1 || level > 19) throw new Error('--level: 1 to 19');
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs: a positive integer');

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const cli = join(dirname(require.resolve('@diskube/cli/package.json')), 'dist', 'cli.js');
const diskube = `${q(process.execPath)} ${q(cli)}`;
const work = args.work ?? join(tmpdir(), `diskube-bench-${quick ? 'quick' : 'full'}`);
const w = (/** @type {string} */ name) => join(work, name);
// The CLI and the library keep each backup's state digests in the per-user cache: use one in the
// work folder, not the user's (the backups timed here write theirs like any user's would).
process.env.DISKUBE_CACHE_DIR = w('diskube-cache');
const started = performance.now();
const loadBefore = loadavg();
const log = (/** @type {string} */ m) =>
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${m}\n`);

for (const tool of ['partclone.ext4', 'zstd', 'debugfs', 'dumpe2fs', 'e2fsck', 'cmp']) {
  const found = await run('sh', ['-c', `command -v ${tool}`], { allowFail: true });
  if (found.code !== 0) throw new Error(`the benchmark needs ${tool} on PATH`);
}
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

// ---- The image -------------------------------------------------------------------------
const spec = quick ? QUICK_SPEC : FULL_SPEC;
log('building (or reusing) the image');
// A cache of our own: the shared default cache is cleared by other packages' tests.
const cacheDir = process.env.DISKUBE_IMAGE_CACHE ?? join(here, '..', '.cache', 'images');
const built = await buildImage(spec, { cacheDir });
const image = built.image;
const part = built.manifest.partitions[0];
if (!part) throw new Error('the image has no filesystem');
const fileCount = part.files.length;
const fileBytes = part.files.reduce((n, f) => n + f.size, 0);
log(`image ${image}: ${fileCount} files, ${mib(fileBytes)}`);
const ref = await writeReference(image, w('reference.img'));
log(`used ${mib(ref.usedBytes)}, non-zero ${mib(ref.dataBytes)} (dumpe2fs)`);

const timing = async (
  /** @type {Array<{ name: string, command: string, prepare?: string }>} */ commands,
) => {
  const t = await timeInterleaved(commands, { runs, jsonDir: work });
  return commands.map((c) => /** @type {Timing} */ (t[c.name]));
};
const size = async (/** @type {string} */ path) => (await stat(path)).size;
const allocated = async (/** @type {string} */ path) => (await stat(path)).blocks * 512;
const cmp = async (/** @type {string} */ a, /** @type {string} */ b) =>
  (await run('cmp', ['-s', a, b], { allowFail: true })).code === 0;
const fsck = async (/** @type {string} */ img) => {
  const r = await run('e2fsck', ['-fn', img], { allowFail: true });
  return r.code === 0 ? 'clean' : `exit ${r.code}`;
};

// ---- Snapshot backup ---------------------------------------------------------------------
const dkb = w('snapshot.dkb');
const pcz = w('partclone.pc.zst');
const rawz = w('raw.zst');
const diskubeBackup = `${diskube} backup ${q(image)} ${q(dkb)} --level ${level} -f --json > /dev/null`;
const partcloneBackup = `partclone.ext4 -c -q -s ${q(image)} -o - 2>/dev/null | zstd -${level} -T0 -q -f -o ${q(pcz)}`;
const rawZstd = `zstd -${level} -T0 -q -f ${q(image)} -o ${q(rawz)}`;

log('backups: diskube, partclone + zstd, raw zstd (interleaved)');
const [dBackup, pBackup, rBackup] = /** @type {[Timing, Timing, Timing]} */ (
  await timing([
    { name: 'diskube-backup', command: diskubeBackup },
    { name: 'partclone-backup', command: partcloneBackup },
    { name: 'raw-zstd', command: rawZstd },
  ])
);
log('peak RSS runs');
const dBackupV = await timeVerbose(
  `${diskube} backup ${q(image)} ${q(dkb)} --level ${level} -f --json`,
);
const dSummary = JSON.parse(dBackupV.stdout);
log('profiling one diskube backup (node --cpu-prof)');
const profDir = w('profile');
await sh(
  `${q(process.execPath)} --cpu-prof --cpu-prof-dir=${q(profDir)} ${q(cli)} backup ${q(image)} ${q(w('profiled.dkb'))} --level ${level} -f --json > /dev/null`,
);
await rm(w('profiled.dkb'), { force: true });
const profile = await summarizeProfileDir(profDir);
const dInfo = await backupInfo(dkb);
const pBackupV = await timeVerbose(partcloneBackup);
const dSize = await size(dkb);
const pSize = await size(pcz);
const rSize = await size(rawz);
// What a digest table would add (16 bytes per stored block, incompressible): the files hold none
// by default since format 2.1 (`--digest-table` keeps it); the state's digests go to the cache.
// The digest table lists the blocks in the frames; the state digests every used non-zero block.
const digestBytes = 16 * dInfo.storedBlocks;
const stateDigestBytes = 16 * (dInfo.usedBlocks - dInfo.zeroBlocks);

// ---- Snapshot restore ---------------------------------------------------------------------
const dOut = w('restored-diskube.img');
const pOut = w('restored-partclone.img');
const partcloneRestore = `zstd -dc -q ${q(pcz)} | partclone.ext4 -r -W -q -s - -o ${q(pOut)} > /dev/null 2>&1`;
log('restores: diskube, partclone (interleaved)');
const [dRestore, pRestore] = /** @type {[Timing, Timing]} */ (
  await timing([
    {
      name: 'diskube-restore',
      command: `${diskube} restore ${q(dkb)} ${q(dOut)} -f --json > /dev/null`,
      prepare: `rm -f ${q(dOut)}`,
    },
    { name: 'partclone-restore', command: partcloneRestore, prepare: `rm -f ${q(pOut)}` },
  ])
);
await rm(dOut, { force: true });
await rm(pOut, { force: true });
const dRestoreV = await timeVerbose(`${diskube} restore ${q(dkb)} ${q(dOut)} -f --json`);
const dRestoreSummary = JSON.parse(dRestoreV.stdout);
const pRestoreV = await timeVerbose(partcloneRestore);
log('checking the restored images');
const dSame = await cmp(dOut, w('reference.img'));
const pSame = await cmp(pOut, w('reference.img'));
const dFsck = await fsck(dOut);
const pFsck = await fsck(pOut);
const dAlloc = await allocated(dOut);
const pAlloc = await allocated(pOut);
await rm(dOut, { force: true });
await rm(pOut, { force: true });
await rm(rawz, { force: true });

// ---- Incremental chain ----------------------------------------------------------------------
log('chain: copying the image');
const chainImg = w('chain.img');
await sh(`cp --sparse=always ${q(image)} ${q(chainImg)}`);
const stepSize = quick ? STEP_SIZES.quick : STEP_SIZES.full;
const smallFiles = part.files
  .filter((f) => f.path.startsWith('/home/user/docs/'))
  .map((f) => ({ path: f.path, size: f.size }));
/** @type {Array<{ name: string, kind: string, changedBlocks: number | null, stored: number, seconds: number, change: string }>} */
const chain = [];
const backupName = (/** @type {number} */ k) => w(`chain-${String(k).padStart(2, '0')}.dkb`);
for (let k = 0; k < 10; k++) {
  let change = 'initial image';
  if (k > 0) {
    const s = await applyStep({
      image: chainImg,
      step: k,
      blockSize: ref.blockSize,
      size: stepSize,
      smallFiles,
      scratch: w('steps'),
    });
    change = `${mib(s.bytesOverwritten)} overwritten, ${mib(s.bytesAdded)} new, ${s.filesDeleted} deleted`;
  }
  // Building the chain is setup, not a timed comparison: it calls the library directly.
  const t = performance.now();
  const summary = await backup({
    image: chainImg,
    out: backupName(k),
    ...(k > 0 ? { base: backupName(k - 1) } : {}),
    compress: { type: 'zstd', level },
    overwrite: true,
  });
  const seconds = (performance.now() - t) / 1000;
  chain.push({
    name: `chain-${String(k).padStart(2, '0')}.dkb`,
    kind: summary.kind,
    changedBlocks: summary.changedBlocks,
    stored: summary.fileLength,
    seconds,
    change,
  });
  log(`chain ${k}: ${summary.kind}, ${mib(summary.fileLength)} in ${secs(seconds)}`);
}
const chainFsck = await fsck(chainImg);
const chainRef = await writeReference(chainImg, w('chain-reference.img'));
const newest = backupName(9);
log('chain restores: reverse, patch (interleaved)');
/** @type {Array<'reverse' | 'patch'>} */
const strategies = ['reverse', 'patch'];
const chainTimes = await timing(
  strategies.map((strategy) => {
    const out = w(`chain-${strategy}.img`);
    return {
      name: `chain-${strategy}`,
      command: `${diskube} restore ${q(newest)} ${q(out)} --strategy ${strategy} -f --json > /dev/null`,
      prepare: `rm -f ${q(out)}`,
    };
  }),
);
/** @type {Record<string, { time: Timing, summary: any, same: boolean, fsck: string }>} */
const chainRestores = {};
for (const [i, strategy] of strategies.entries()) {
  const out = w(`chain-${strategy}.img`);
  const time = /** @type {Timing} */ (chainTimes[i]);
  await rm(out, { force: true });
  chainRestores[strategy] = {
    time,
    summary: await restore({ backup: newest, out, strategy, overwrite: true }),
    same: await cmp(out, w('chain-reference.img')),
    fsck: await fsck(out),
  };
}
const reverse = /** @type {(typeof chainRestores)[string]} */ (chainRestores.reverse);
const patch = /** @type {(typeof chainRestores)[string]} */ (chainRestores.patch);
const strategiesSame = await cmp(w('chain-reverse.img'), w('chain-patch.img'));

// ---- Report ----------------------------------------------------------------------------------
const versions = toolVersion;
const kernel = (await run('uname', ['-r'])).stdout.trim();
// @diskube/format runs one compression worker per core (the main thread only reads and writes).
const workers = availableParallelism();
const staleBytes = quick ? 32 << 20 : 512 << 20;
const timed = (/** @type {{ median: number, min: number, max: number }} */ t) =>
  `${secs(t.median)} (${t.min.toFixed(2)}–${t.max.toFixed(2)})`;

const targets = [
  [
    'backup size ≤ partclone + zstd',
    `${mib(dSize)} vs ${mib(pSize)} (${relative(dSize, pSize)})`,
    met(dSize <= pSize),
  ],
  [
    'backup time ≤ partclone + zstd',
    `${secs(dBackup.median)} vs ${secs(pBackup.median)} (${relative(dBackup.median, pBackup.median)})`,
    met(dBackup.median <= pBackup.median),
  ],
  [
    'restore time ≤ partclone restore',
    `${secs(dRestore.median)} vs ${secs(pRestore.median)} (${relative(dRestore.median, pRestore.median)})`,
    met(dRestore.median <= pRestore.median),
  ],
  [
    'snapshot restore bytes written = data bytes',
    `${dRestoreSummary.bytesWritten} vs ${ref.dataBytes}`,
    met(dRestoreSummary.bytesWritten === ref.dataBytes),
  ],
  [
    'chain reverse restore bytes written = data bytes',
    `${reverse.summary.bytesWritten} vs ${chainRef.dataBytes}`,
    met(reverse.summary.bytesWritten === chainRef.dataBytes),
  ],
  [
    'diskube used bytes = dumpe2fs used bytes',
    `${dSummary.usedBytes} vs ${ref.usedBytes}`,
    met(dSummary.usedBytes === ref.usedBytes),
  ],
  [
    'restored images identical to the reference (cmp), e2fsck -fn clean',
    `snapshot ${dSame && pSame ? 'yes' : 'no'}, chain ${reverse.same && patch.same && strategiesSame ? 'yes' : 'no'}`,
    met(
      dSame &&
        pSame &&
        reverse.same &&
        patch.same &&
        strategiesSame &&
        [dFsck, pFsck, reverse.fsck, patch.fsck, chainFsck].every((s) => s === 'clean'),
    ),
  ],
];

const snapshotTable = markdownTable(
  ['', 'diskube', 'partclone.ext4 + zstd', 'raw zstd of the image'],
  [
    [`backup wall, median of ${runs}`, timed(dBackup), timed(pBackup), timed(rBackup)],
    ['output size', mib(dSize), mib(pSize), mib(rSize)],
    [
      'output / used bytes',
      (dSize / ref.usedBytes).toFixed(3),
      (pSize / ref.usedBytes).toFixed(3),
      (rSize / ref.usedBytes).toFixed(3),
    ],
    ['backup CPU (user + sys), median', secs(dBackup.cpu), secs(pBackup.cpu), secs(rBackup.cpu)],
    ['backup peak RSS', mib(dBackupV.maxRssBytes), mib(pBackupV.maxRssBytes), '—'],
    [
      'threads',
      `main (read, write) + ${workers} worker${workers === 1 ? '' : 's'} (digest, zstd)`,
      `partclone 1 + zstd -T0 (${availableParallelism()})`,
      `zstd -T0 (${availableParallelism()})`,
    ],
    [`restore wall, median of ${runs}`, timed(dRestore), timed(pRestore), '—'],
    ['restore CPU (user + sys), median', secs(dRestore.cpu), secs(pRestore.cpu), '—'],
    ['restore peak RSS', mib(dRestoreV.maxRssBytes), mib(pRestoreV.maxRssBytes), '—'],
    [
      'restored file: bytes written / allocated',
      `${mib(dRestoreSummary.bytesWritten)} / ${mib(dAlloc)}`,
      `— / ${mib(pAlloc)}`,
      '—',
    ],
    ['restored = reference (cmp)', dSame ? 'yes' : 'NO', pSame ? 'yes' : 'NO', '—'],
    ['e2fsck -fn restored', dFsck, pFsck, '—'],
  ],
);

const chainTable = markdownTable(
  ['backup', 'kind', 'change before it', 'changed blocks', 'stored', 'wall'],
  chain.map((c) => [
    c.name,
    c.kind,
    c.change,
    c.changedBlocks === null ? '—' : String(c.changedBlocks),
    mib(c.stored),
    secs(c.seconds),
  ]),
);
const chainRestoreTable = markdownTable(
  [
    'restore of chain-09',
    `wall, median of ${runs}`,
    'bytes read',
    'bytes written',
    'written / data bytes',
    '= reference (cmp)',
    'e2fsck -fn',
  ],
  [reverse, patch].map((r, i) => [
    `--strategy ${i === 0 ? 'reverse' : 'patch'}`,
    timed(r.time),
    mib(r.summary.bytesRead),
    `${mib(r.summary.bytesWritten)} (${r.summary.bytesWritten})`,
    (r.summary.bytesWritten / chainRef.dataBytes).toFixed(3),
    r.same ? 'yes' : 'NO',
    r.fsck,
  ]),
);

const cpu = cpus()[0]?.model ?? 'unknown CPU';
const loadAfter = loadavg();
const load = (/** @type {number[]} */ l) => l.map((x) => x.toFixed(1)).join(' / ');
/** @type {string[]} */
const stageNames = [];
for (const t of profile)
  for (const st of t.stages) if (!stageNames.includes(st.stage)) stageNames.push(st.stage);
const profileTable = markdownTable(
  ['stage (self time)', ...profile.map((t) => `${t.thread} (${secs(t.totalMs / 1000)})`)],
  stageNames.map((name) => [
    name,
    ...profile.map((t) => {
      const ms = t.stages.find((st) => st.stage === name)?.ms ?? 0;
      return ms === 0
        ? '—'
        : `${(ms / 1000).toFixed(2)} s (${((ms / t.totalMs) * 100).toFixed(0)} %)`;
    }),
  ]),
);
const report = `# diskube benchmark${quick ? ' (quick)' : ''}

- Date: ${new Date().toISOString()}
- Machine: ${cpu}, ${availableParallelism()} cores, ${mib(totalmem())} RAM, Linux ${kernel}, Node ${process.version}
- Tools: ${await versions('partclone.ext4 -v')}; ${await versions('zstd --version')}; ${await versions('hyperfine --version')}; e2fsprogs ${(await versions('dumpe2fs -V')).replace(/^dumpe2fs\s*/, '')}
- zstd level ${level} for every tool; timings with ${dBackup.tool}, ${runs} runs each, interleaved (run 1 of every tool, then run 2, …), median (min–max), warm page cache; CPU = user + sys of the process and its children; one extra run under \`/usr/bin/time -v\` for peak RSS.
- Image: ${mib(ref.imageBytes)} ext4 (4 KiB blocks) built by @diskube/mkimage (cached by spec hash): ${fileCount} files, ${mib(fileBytes)} of file data (text logs, random big files, many small random files), ${mib(staleBytes)} of deleted files left as stale data; ${mib(ref.usedBytes)} used per dumpe2fs, ${mib(ref.dataBytes)} of it not all-zero ("data bytes").
- Load average (1 / 5 / 15 min) at start ${load(loadBefore)}, at end ${load(loadAfter)} on ${availableParallelism()} cores: other jobs shared the machine when this is above ~1; wall times are then noisy, CPU times much less so.
- "Reference" = the image with unused blocks zeroed (built from dumpe2fs's free-block lists); a used-blocks restore must equal it byte for byte.

## Targets

${markdownTable(['target', 'measured', 'met'], targets)}

## Snapshot backup and restore

${snapshotTable}

diskube backup file: ${dInfo.frames} frames, ${dInfo.usedBlocks} used blocks (${dInfo.zeroBlocks} all-zero, not stored; ${dInfo.repeatedBlocks ?? 0} held as repeats of a block in an earlier frame, format 2.2); ${dInfo.digestTable ? `digest table ${mib(digestBytes)} (16 bytes per stored block, incompressible), i.e. ${mib(dSize - digestBytes)} without it (${relative(dSize - digestBytes, pSize)} vs partclone + zstd)` : `no digest table (format 2.1's default; with \`--digest-table\` the file would be ${mib(dSize + digestBytes + 20)}, ${relative(dSize + digestBytes + 20, pSize)} vs partclone + zstd); the ${mib(stateDigestBytes)} of state digests stay in the cache for the next incremental`}.

Where one diskube backup spends its time (\`node --cpu-prof\`, one extra run; self time per stage and thread; idle = waiting):

${profileTable}

## Incremental chain (snapshot + 9 incrementals on one image copy)

Each step: ${stepSize.bigRanges} × ${stepSize.bigRangeBlocks} blocks overwritten in place in ${stepSize.bigFile}, ${stepSize.rewrites} small files rewritten in place, ${stepSize.deletes} deleted, a ${mib(stepSize.logBytes)} text log and ${stepSize.newFiles} small files written (debugfs). Final image: ${mib(chainRef.usedBytes)} used, ${mib(chainRef.dataBytes)} data bytes; e2fsck -fn ${chainFsck}.

${chainTable}

${chainRestoreTable}

Both strategies' outputs identical to each other (cmp): ${strategiesSame ? 'yes' : 'NO'}.

<details><summary>Image spec</summary>

\`\`\`
${spec.trimEnd()}
\`\`\`
</details>
`;

process.stdout.write(report);
const resultsPath = join(here, '..', quick ? 'RESULTS-quick.md' : 'RESULTS.md');
await writeReport(resultsPath, report);
log(`wrote ${resultsPath}`);
if (!args.keep) await rm(work, { recursive: true, force: true });
