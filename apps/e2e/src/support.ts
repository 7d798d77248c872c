// Helpers for end-to-end tests: run the built `diskube` binary, build images, check them.
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { onTestFinished } from 'vitest';

const require = createRequire(import.meta.url);
/** The built binary, exactly as users run it. */
export const DISKUBE = join(dirname(require.resolve('@diskube/cli/package.json')), 'dist/cli.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function diskube(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DISKUBE, ...args], {
      env: { ...process.env, ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs diskube and parses its `--json` output, failing loudly on a non-zero exit. */
export async function diskubeJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const result = await diskube([...args, '--json']);
  if (result.code !== 0) {
    throw new Error(`diskube ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as T;
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Skips locally with a loud reason when tools are missing; under CI=true a missing tool fails. */
export function requireTools(...tools: string[]): boolean {
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length === 0) return true;
  const message = `missing system tools: ${missing.join(', ')} (run scripts/setup.sh)`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`\n*** e2e tests SKIPPED: ${message} ***\n`);
  return false;
}

/**
 * A fresh temporary directory, removed when the test that asked for it ends (pass or fail), or
 * when the process exits if it was asked for outside a test: images and backups add up to
 * gigabytes over a run.
 */
export async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'diskube-e2e-'));
  try {
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
  } catch {
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}
