// Runs system tools with a fixed clock, locale and time zone.
import { spawn } from 'node:child_process';
import { BuildError, ToolMissingError } from './errors.js';

/** Fixed clock for every tool that stamps times: 2001-09-09T01:46:40Z. */
export const FIXED_TIME = 1_000_000_000;

/** Tools live in /sbin on Debian; non-root PATHs often lack it. */
const PATH = [process.env.PATH ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin']
  .filter(Boolean)
  .join(':');

export interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a tool; a missing binary is a `ToolMissingError`, a failing one a `BuildError`. */
export function run(tool: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {
      cwd: opts.cwd,
      env: {
        ...process.env,
        PATH,
        LC_ALL: 'C',
        TZ: 'UTC',
        SOURCE_DATE_EPOCH: String(FIXED_TIME),
        ...opts.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') return reject(e);
      // Imported here, not at the top: the registry's builders import this module.
      import('./tools.js').then(
        ({ debianPackage }) => reject(new ToolMissingError(tool, debianPackage(tool))),
        reject,
      );
    });
    child.on('close', (code) => {
      const r = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? -1,
      };
      if (!(opts.okCodes ?? [0]).includes(r.code)) {
        const cmd = [tool, ...args].join(' ');
        const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ');
        reject(new BuildError(`${tool} failed (exit ${r.code}): ${said}`, cmd, r.stderr));
      } else resolve(r);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** True when `tool` can be started (for tests that skip on machines without it). */
export async function hasTool(tool: string): Promise<boolean> {
  try {
    await run(tool, ['--version'], { okCodes: Array.from({ length: 256 }, (_, i) => i) });
    return true;
  } catch (e) {
    if (ToolMissingError.isInstance(e)) return false;
    throw e;
  }
}
