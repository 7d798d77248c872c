#!/usr/bin/env node
import { existsSync } from 'node:fs';
// Bundles every entry point that claims to run in browsers with esbuild for platform=browser and
// fails if anything in its import graph reaches a Node builtin (`node:fs`, `fs`, `crypto` …),
// even an import that tree-shaking would later drop.
//
//   node scripts/check-browser-bundle.mjs              the packages below
//   node scripts/check-browser-bundle.mjs FILE|PKG…    those instead
import { builtinModules, createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** The entry points whose READMEs promise they run in a browser. */
export const BROWSER_ENTRIES = [
  '@diskube/bitmap',
  '@diskube/core',
  '@diskube/ext',
  '@diskube/fat',
  '@diskube/xfs',
  '@diskube/ntfs',
  '@diskube/partition',
  '@diskube/container',
  'diskube',
];

// Package names resolve from `diskube`'s own folder: it depends on every other entry above.
const require = createRequire(import.meta.url);
const RESOLVE_DIR = dirname(require.resolve('diskube/package.json'));
const BUILTINS = new Set(builtinModules.filter((name) => !name.startsWith('_')));

export function isNodeBuiltin(specifier) {
  return specifier.startsWith('node:') || BUILTINS.has(specifier.split('/')[0]);
}

/**
 * Bundles `entry` (a package name, or an absolute file path) for the browser.
 * Returns the Node builtins its graph imports, as `importer → specifier`; empty means clean.
 */
export async function nodeImportsOf(entry) {
  const found = [];
  const contents = `export * from ${JSON.stringify(entry)};`;
  await build({
    stdin: { contents, resolveDir: RESOLVE_DIR, sourcefile: `<${entry}>` },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'no-node-builtins',
        setup(b) {
          b.onResolve({ filter: /.*/ }, (args) => {
            if (!isNodeBuiltin(args.path)) return undefined;
            found.push(`${args.importer} → ${args.path}`);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  return found;
}

async function main(entries) {
  let failed = false;
  for (const entry of entries) {
    let imports;
    try {
      imports = await nodeImportsOf(entry);
    } catch (error) {
      failed = true;
      console.error(`✗ ${entry}: does not bundle for the browser\n${error.message}`);
      continue;
    }
    if (imports.length === 0) {
      console.log(`✓ ${entry}: no Node builtins`);
    } else {
      failed = true;
      console.error(`✗ ${entry} imports Node builtins:\n  ${imports.join('\n  ')}`);
    }
  }
  if (failed) process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.map((arg) => (existsSync(arg) ? resolve(arg) : arg));
  await main(files.length > 0 ? files : BROWSER_ENTRIES);
}
