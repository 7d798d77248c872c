// Helpers for the browser tests: serve the built page, start Debian's Chromium, run the CLI oracle.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { hasTool } from '@diskube/mkimage';
import { type Browser, chromium } from 'playwright-core';

const run = promisify(execFile);
export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CHROMIUM = process.env.DISKUBE_CHROMIUM ?? '/usr/bin/chromium';

/**
 * True when Chromium and the image tools are here. Locally a missing one skips the tests with a
 * loud reason; under CI=true it fails them, so a CI machine without Chromium never passes quietly.
 */
export async function requireBrowserTools(...tools: string[]): Promise<boolean> {
  const missing = existsSync(CHROMIUM) ? [] : [`chromium (${CHROMIUM})`];
  for (const tool of tools) if (!(await hasTool(tool))) missing.push(tool);
  if (!existsSync(join(WEB, 'dist/index.html'))) missing.push('apps/web/dist (run the build)');
  if (missing.length === 0) return true;
  const message = `missing: ${missing.join(', ')} (run scripts/setup.sh)`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`\n*** web browser tests SKIPPED: ${message} ***\n`);
  return false;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** A static server for `dist` on a free loopback port. */
export async function serveDist(): Promise<{ url: string; server: Server }> {
  const root = join(WEB, 'dist');
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(root, path.endsWith('/') ? `${path}index.html` : path);
    try {
      if (!file.startsWith(root)) throw new Error('outside dist');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, server };
}

/** Debian's Chromium, headless, with the flags this closed network needs (env notes). */
export function launchChromium(): Promise<Browser> {
  // Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const require = createRequire(import.meta.url);
/** The built `diskube` binary, exactly as users run it. */
const CLI = join(dirname(require.resolve('@diskube/cli/package.json')), 'dist/cli.js');

/** `diskube ARGS --json` from the built CLI: the oracle the page is checked against. */
export async function diskubeJson<T>(...args: string[]): Promise<T> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], {
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout) as T;
}

/** `diskube ARGS`, for the exit code and message of a refusal. */
export async function diskubeFails(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [CLI, ...args]);
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
  throw new Error(`diskube ${args.join(' ')} succeeded`);
}
