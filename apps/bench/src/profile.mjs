#!/usr/bin/env node
// Summarizes V8 CPU profiles (`node --cpu-prof`, one file per thread): self time per function,
// heaviest first, to see which backup stage (reading, digesting, compressing, worker handoff)
// takes the time.
//
//   node --cpu-prof --cpu-prof-dir=prof dist/cli.js backup img out -f
//   node src/profile.mjs prof/*.cpuprofile [--top 20]

import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * Self time per function of one profile, in milliseconds, heaviest first.
 *
 * @param {{ nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number } }>, samples: number[], timeDeltas: number[], startTime: number, endTime: number }} profile
 * @returns {{ totalMs: number, rows: Array<{ name: string, ms: number }> }}
 */
export function selfTimes(profile) {
  /** @type {Map<number, string>} */
  const names = new Map();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const where = f.url ? ` ${basename(f.url)}:${f.lineNumber + 1}` : '';
    names.set(n.id, `${f.functionName || '(anonymous)'}${where}`);
  }
  /** @type {Map<string, number>} */
  const ms = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const name = names.get(profile.samples[i] ?? -1) ?? '(unknown)';
    // timeDeltas[i] is the time before sample i; attribute it to that sample.
    ms.set(name, (ms.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const rows = [...ms].map(([name, t]) => ({ name, ms: t })).sort((a, b) => b.ms - a.ms);
  return { totalMs: (profile.endTime - profile.startTime) / 1000, rows };
}

/** Backup stages, matched against function names (the first match wins). */
const STAGES = [
  ['(idle)', /^\(idle\)/],
  ['digest (SHA-256 per block)', /^(hash|blockDigest|digest)\b/],
  ['compress (zstd)', /^compress\b.*compress\.js|^compress$/],
  ['worker handoff (postMessage)', /^postMessage\b/],
  ['checksums (CRC32C)', /crc32/i],
  [
    'per-block loop (zero check, copy into frame)',
    /^(storeBlock|flushFrame|processBlock|writeBackup|isZeroBlock|compare)\b/,
  ],
  ['read source', /^(read|readBytes|fsCall)\b/],
  ['write output', /^(write|writeBuffer|writeBuffers|writev)\b/],
  ['garbage collector', /^\(garbage collector\)/],
];

/**
 * Self time per backup stage (see STAGES; everything else is "other").
 *
 * @param {Array<{ name: string, ms: number }>} rows
 * @returns {Array<{ stage: string, ms: number }>}
 */
export function stageTimes(rows) {
  /** @type {Map<string, number>} */
  const ms = new Map();
  for (const r of rows) {
    const stage = STAGES.find(([, re]) => /** @type {RegExp} */ (re).test(r.name))?.[0] ?? 'other';
    ms.set(/** @type {string} */ (stage), (ms.get(/** @type {string} */ (stage)) ?? 0) + r.ms);
  }
  return [...ms].map(([stage, t]) => ({ stage, ms: t })).sort((a, b) => b.ms - a.ms);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '15' } },
  });
  for (const file of positionals) {
    const { totalMs, rows } = selfTimes(JSON.parse(await readFile(file, 'utf8')));
    process.stdout.write(`\n${basename(file)}: ${(totalMs / 1000).toFixed(2)} s\n`);
    for (const r of rows.slice(0, Number(values.top))) {
      const pct = ((r.ms / totalMs) * 100).toFixed(1).padStart(5);
      process.stdout.write(`${r.ms.toFixed(0).padStart(8)} ms ${pct} %  ${r.name}\n`);
    }
  }
}

/**
 * Profiles of one run (`--cpu-prof-dir`), summarized per thread: the main thread first (thread
 * id 0 in V8's file name CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile), then the workers.
 *
 * @param {string} dir
 * @returns {Promise<Array<{ thread: string, totalMs: number, stages: Array<{ stage: string, ms: number }> }>>}
 */
export async function summarizeProfileDir(dir) {
  const { readdir } = await import('node:fs/promises');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const tid = (/** @type {string} */ f) => Number(f.split('.').at(-3));
  files.sort((a, b) => tid(a) - tid(b));
  const out = [];
  for (const f of files) {
    const { totalMs, rows } = selfTimes(JSON.parse(await readFile(`${dir}/${f}`, 'utf8')));
    out.push({
      thread: tid(f) === 0 ? 'main' : `worker ${tid(f)}`,
      totalMs,
      stages: stageTimes(rows),
    });
  }
  return out;
}
