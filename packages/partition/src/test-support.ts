// Test helpers: build partitioned disks with the real tools (sfdisk), no mounting needed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Skips locally with a loud reason when a tool is missing; under CI=true a missing tool fails. */
export function requireTool(name: string, pkg: string): boolean {
  if (hasTool(name)) return true;
  const message = `${name} not found: install the Debian package ${pkg}`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

/** A disk of `size` bytes partitioned by `sfdisk` with the given script; returns its bytes. */
export function sfdiskImage(size: number, script: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'diskube-part-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, new Uint8Array(0));
    execFileSync('truncate', ['-s', String(size), path]);
    execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', path], { input: script });
    return new Uint8Array(readFileSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
