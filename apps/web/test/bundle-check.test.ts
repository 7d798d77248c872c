// The browser bundle check itself: it must pass the real packages and catch a Node import.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without type declarations
import { BROWSER_ENTRIES, isNodeBuiltin, nodeImportsOf } from '../scripts/check-browser-bundle.mjs';
import { WEB } from './support.js';

const fixture = (name: string) => join(WEB, 'test/fixtures', name);

describe('browser bundle check', () => {
  it('fails on a module importing node:fs', async () => {
    expect(await nodeImportsOf(fixture('imports-node-fs.js'))).toEqual([
      `${fixture('imports-node-fs.js')} → node:fs`,
    ]);
  });

  it('fails on a bare builtin reached through another module', async () => {
    expect(await nodeImportsOf(fixture('imports-builtin-indirectly.js'))).toEqual([
      `${fixture('imports-crypto.js')} → crypto`,
    ]);
  });

  it('passes a module without Node imports', async () => {
    expect(await nodeImportsOf(fixture('clean.js'))).toEqual([]);
  });

  it('catches the Node-only entry points the packages keep apart', async () => {
    expect(await nodeImportsOf('@diskube/core/node')).not.toEqual([]);
  });

  it('knows builtins by both spellings, and only those', () => {
    for (const name of ['node:fs', 'fs', 'fs/promises', 'node:test', 'crypto', 'worker_threads']) {
      expect(isNodeBuiltin(name), name).toBe(true);
    }
    for (const name of ['diskube', '@diskube/core', 'events-polyfill', './fs.js']) {
      expect(isNodeBuiltin(name), name).toBe(false);
    }
  });

  it('passes every package that claims browser safety', async () => {
    for (const entry of BROWSER_ENTRIES as string[]) {
      expect(await nodeImportsOf(entry), entry).toEqual([]);
    }
  });
});
