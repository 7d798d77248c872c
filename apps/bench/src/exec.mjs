import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * Runs a program and collects its output. Rejects (with stderr in the message) on a non-zero
 * exit unless `allowFail` is set.
 *
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ input?: string, env?: Record<string, string>, allowFail?: boolean, stdoutTo?: 'inherit-stderr' }} [options]
 * @returns {Promise<{ code: number, stdout: string, stderr: string }>}
 */
export function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...options.env },
      stdio: [
        options.input === undefined ? 'ignore' : 'pipe',
        options.stdoutTo === 'inherit-stderr' ? 2 : 'pipe',
        'pipe',
      ],
    });
    /** @type {Buffer[]} */
    const out = [];
    /** @type {Buffer[]} */
    const err = [];
    child.stdout?.on('data', (b) => out.push(b));
    child.stderr?.on('data', (b) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = {
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (result.code !== 0 && !options.allowFail) {
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(-800)}`,
          ),
        );
      } else resolve(result);
    });
    if (child.stdin) {
      // A program may exit before reading all its input; that is its exit code's business.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
  });
}

/** Runs a shell command line (pipelines), failing on any stage's error. */
export function sh(/** @type {string} */ line) {
  return run('bash', ['-o', 'pipefail', '-c', line]);
}

/** Quotes a word for sh. */
export function q(/** @type {string} */ s) {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/**
 * @typedef {object} Timing
 * @property {number} median wall seconds
 * @property {number} min
 * @property {number} max
 * @property {number} cpu median CPU seconds (user + sys) of the command and its children
 * @property {number} runs
 * @property {string} tool
 */

/**
 * Times shell commands, interleaved (run 1 of each, then run 2 of each, …) so that a change in
 * the machine's load hits all of them alike. Each run goes through hyperfine (`--runs 1`, the
 * command's `prepare` before it) when it is installed, else is timed here.
 *
 * @param {Array<{ name: string, command: string, prepare?: string }>} commands
 * @param {{ runs: number, jsonDir: string }} options
 * @returns {Promise<Record<string, Timing>>}
 */
export async function timeInterleaved(commands, options) {
  const useHyperfine = await hasTool('hyperfine');
  /** @type {Record<string, { wall: number[], cpu: number[] }>} */
  const samples = {};
  for (const c of commands) samples[c.name] = { wall: [], cpu: [] };
  for (let i = 0; i < options.runs; i++) {
    for (const c of commands) {
      const s = /** @type {{ wall: number[], cpu: number[] }} */ (samples[c.name]);
      if (useHyperfine) {
        const json = join(options.jsonDir, `${c.name}.${i}.hyperfine.json`);
        const args = ['--runs', '1', '--style', 'basic', '--export-json', json];
        if (c.prepare) args.push('--prepare', c.prepare);
        args.push('--command-name', c.name, c.command);
        await run('hyperfine', args, { stdoutTo: 'inherit-stderr' });
        const r = JSON.parse(await readFile(json, 'utf8')).results[0];
        s.wall.push(r.times[0]);
        s.cpu.push(r.user + r.system);
      } else {
        if (c.prepare) await sh(c.prepare);
        const t = performance.now();
        const v = await timeVerbose(c.command);
        s.wall.push((performance.now() - t) / 1000);
        s.cpu.push(v.cpuSeconds);
      }
    }
  }
  /** @type {Record<string, Timing>} */
  const out = {};
  for (const [name, s] of Object.entries(samples)) {
    out[name] = {
      median: median(s.wall),
      min: Math.min(...s.wall),
      max: Math.max(...s.wall),
      cpu: median(s.cpu),
      runs: s.wall.length,
      tool: useHyperfine ? 'hyperfine' : 'node',
    };
  }
  return out;
}

/** Median of a list of numbers (mean of the middle two for an even count). */
export function median(/** @type {number[]} */ values) {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}

/**
 * Runs a shell command under GNU `/usr/bin/time -v` once: wall seconds, peak RSS (largest of
 * the command and its children) and CPU seconds.
 *
 * @param {string} command
 * @returns {Promise<{ wall: number, maxRssBytes: number, cpuSeconds: number, stdout: string }>}
 */
export async function timeVerbose(command) {
  const t = performance.now();
  const r = await run('/usr/bin/time', ['-v', 'bash', '-o', 'pipefail', '-c', command]);
  const wall = (performance.now() - t) / 1000;
  return { wall, ...parseTimeVerbose(r.stderr), stdout: r.stdout };
}

/** Reads peak RSS and CPU time from GNU time's `-v` report. */
export function parseTimeVerbose(/** @type {string} */ text) {
  const field = (/** @type {string} */ name) => {
    const m = new RegExp(`^\\s*${name}:\\s*([\\d.]+)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`/usr/bin/time -v output has no "${name}"`);
    return Number(m[1]);
  };
  return {
    maxRssBytes: field('Maximum resident set size \\(kbytes\\)') * 1024,
    cpuSeconds: field('User time \\(seconds\\)') + field('System time \\(seconds\\)'),
  };
}

/** @type {Map<string, boolean>} */
const tools = new Map();

/** Whether a program is on PATH. */
export async function hasTool(/** @type {string} */ name) {
  let found = tools.get(name);
  if (found === undefined) {
    found = (await run('sh', ['-c', `command -v ${q(name)}`], { allowFail: true })).code === 0;
    tools.set(name, found);
  }
  return found;
}

/**
 * Writes a Markdown report and formats it as the repo's formatter wants it (biome formats
 * Markdown; lint checks it).
 */
export async function writeReport(/** @type {string} */ path, /** @type {string} */ text) {
  await writeFile(path, text);
  try {
    const biome = createRequire(import.meta.url).resolve('@biomejs/biome/bin/biome');
    await run(process.execPath, [biome, 'format', '--write', path], { allowFail: true });
  } catch {}
}

/** First line of a tool's version output, without decoration (Markdown-safe). */
export async function toolVersion(/** @type {string} */ cmd) {
  return (await run('sh', ['-c', `${cmd} 2>&1 | head -1`], { allowFail: true })).stdout
    .replace(/[*_`]/g, '')
    .replace(/\s+/g, ' ')
    .replace(' : ', ' ')
    .trim();
}
