#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { buildImageFile } from './build.js';
import { BuildError, SpecError, ToolMissingError } from './errors.js';
import { formatSize } from './size.js';

const USAGE = 'usage: mkimage <spec.dsk | -> -o <disk.img> [--json]';

async function readInput(path: string): Promise<string> {
  if (path !== '-') return readFile(path, 'utf8');
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

interface Args {
  input?: string;
  out?: string;
  json: boolean;
  help: boolean;
  bad?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o' || a === '--output') args.out = argv[++i];
    else if (a === '--json') args.json = true;
    else if (a === '-h' || a === '--help') args.help = true;
    else if (args.input === undefined && (a === '-' || !a.startsWith('-'))) args.input = a;
    else args.bad ??= a;
  }
  return args;
}

async function main(args: Args): Promise<number> {
  const { input, out, json } = args;
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.bad !== undefined) {
    process.stderr.write(`mkimage: unexpected argument '${args.bad}'\n${USAGE}\n`);
    return 2;
  }
  if (input === undefined || out === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const text = await readInput(input);
  const manifest = await buildImageFile(text, out);
  if (json) {
    process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${out}: ${formatSize(manifest.size)}, table ${manifest.table}\n`);
  for (const p of manifest.partitions) {
    const bytes = p.files.reduce((n, f) => n + f.size, 0);
    process.stdout.write(
      `  #${p.index} ${p.fs} at ${p.offset} size ${formatSize(p.size)}: ${p.files.length} files, ${bytes} bytes\n`,
    );
  }
  process.stdout.write(`manifest: ${out}.manifest.json\n`);
  return 0;
}

/** One error handler: typed errors become one line and an exit code, anything else a stack. */
function handleError(e: unknown, source: string): number {
  if (SpecError.isInstance(e)) {
    process.stderr.write(`${source}:${e.line}:${e.column}: ${e.reason}\n`);
    return 2;
  }
  if (ToolMissingError.isInstance(e) || BuildError.isInstance(e)) {
    process.stderr.write(`mkimage: ${e.message}\n`);
    return 1;
  }
  if (e instanceof Error && (e as NodeJS.ErrnoException).code === 'ENOENT') {
    process.stderr.write(`mkimage: ${e.message}\n`);
    return 1;
  }
  throw e;
}

const args = parseArgs(process.argv.slice(2));
const source = args.input === undefined || args.input === '-' ? '<stdin>' : args.input;
main(args).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = handleError(e, source);
  },
);
