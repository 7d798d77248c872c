// Test helpers (not exported from the package): tool checks, partition extraction, oracles.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestPartition } from './build.js';
import { hasTool, run } from './tools.js';

/**
 * Tools missing on this machine. Tests that need them skip locally with a loud warning; under
 * CI=true the caller's "tools are installed" test fails instead.
 */
export async function missingTools(tools: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) if (!(await hasTool(t))) missing.push(t);
  if (missing.length > 0 && process.env.CI !== 'true') {
    console.warn(
      `\n*** mkimage tests SKIPPED: missing system tools ${missing.join(', ')} — install e2fsprogs ntfs-3g dosfstools mtools fdisk gcc ***\n`,
    );
  }
  return missing;
}

export async function scratchDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mkimage-test-'));
}

/** Copies one partition out of a disk image into its own file. */
export async function extract(image: string, p: ManifestPartition, dir: string): Promise<string> {
  const out = join(dir, `p${p.index}-${p.offset}.img`);
  const a = await open(image, 'r');
  const b = await open(out, 'w');
  try {
    await b.truncate(p.size);
    const buf = Buffer.alloc(1 << 20);
    for (let at = 0; at < p.size; at += buf.length) {
      const n = Math.min(buf.length, p.size - at);
      await a.read(buf, 0, n, p.offset + at);
      if (buf.subarray(0, n).some((x) => x !== 0)) await b.write(buf, 0, n, at);
    }
  } finally {
    await a.close();
    await b.close();
  }
  return out;
}

/** Runs the filesystem's own checker read-only; resolves to its output, rejects on errors. */
export async function fsck(fs: string, part: string): Promise<string> {
  if (fs.startsWith('ext')) return (await run('e2fsck', ['-fn', part])).stdout;
  if (fs === 'ntfs') {
    // ntfsfix -n exits 0 and prints "processed successfully" on a sound volume, 1 otherwise.
    const r = await run('ntfsfix', ['-n', part]);
    if (!/processed successfully/.test(r.stdout)) throw new Error(`ntfsfix: ${r.stdout}`);
    // ntfsfix only checks mountability, $MFT/$MFTMirr and the boot sectors: also walk every
    // directory index through libntfs-3g.
    const ls = await run('ntfsls', ['-R', '-a', '-p', '/', part]);
    if (ls.stderr.trim() !== '') throw new Error(`ntfsls: ${ls.stderr}`);
    return r.stdout + ls.stdout;
  }
  if (fs === 'fat') return (await run('fsck.vfat', ['-n', part])).stdout;
  throw new Error(`no checker for ${fs}`);
}

/** SHA-256 of a file read from inside a filesystem image with that filesystem's own tools. */
export async function extractedSha256(
  fs: string,
  part: string,
  path: string,
  dir: string,
): Promise<string> {
  const out = join(dir, `x-${createHash('md5').update(path).digest('hex')}`);
  if (fs.startsWith('ext')) {
    const r = await run('debugfs', ['-R', `dump "${path}" ${out}`, part]);
    if (/not found|error/i.test(r.stderr.replace(/^debugfs \d.*$/m, ''))) {
      throw new Error(`debugfs dump ${path}: ${r.stderr}`);
    }
  } else if (fs === 'ntfs') {
    return ntfsSha(part, path);
  } else if (fs === 'fat') {
    await run('mcopy', ['-n', '-i', part, `::${path}`, out], {
      env: { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' },
    });
  }
  const data = await readFile(out);
  await rm(out, { force: true });
  return sha(data);
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** ntfscat writes binary to stdout; collect it as bytes rather than text. */
async function ntfsSha(part: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const c = spawn('ntfscat', [part, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stdout.on('data', (d: Buffer) => h.update(d));
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('close', (code) =>
      code === 0 ? resolve(h.digest('hex')) : reject(new Error(`ntfscat ${path}: ${err}`)),
    );
  });
}

/** Byte offset of `needle` in the file, or -1 (scans in 16 MiB windows with overlap). */
export async function findBytes(file: string, needle: Uint8Array): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const win = 16 << 20;
    const buf = Buffer.alloc(win + needle.length);
    for (let at = 0; at < size; at += win) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      const i = buf.subarray(0, bytesRead).indexOf(needle);
      if (i >= 0) return at + i;
    }
    return -1;
  } finally {
    await fh.close();
  }
}
