import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ToolMissingError } from '../errors.js';
import { pow2, sizeIn, textMax } from '../options.js';
import { run } from '../run.js';
import { parseSize } from '../size.js';
import { type BuildContext, type FilesystemBuilder, hostFile } from './builder.js';
import { NTFS_HELPER_C } from './ntfs-helper.js';

/**
 * Compiles the libntfs-3g helper once per helper directory (keyed by its source hash). Built
 * under a temporary name and renamed, so parallel builds never see a half-written binary.
 */
async function ntfsHelper(dir: string): Promise<string> {
  const hash = createHash('sha256').update(NTFS_HELPER_C).digest('hex').slice(0, 16);
  const bin = join(dir, `mkimage-ntfs-${hash}`);
  try {
    await access(bin);
    return bin;
  } catch {}
  await mkdir(dir, { recursive: true });
  const tag = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  const src = join(dir, `.mkimage-ntfs-${tag}.c`);
  const tmp = join(dir, `.mkimage-ntfs-${tag}`);
  await writeFile(src, NTFS_HELPER_C);
  try {
    const lib = await findLibntfs();
    await run('gcc', ['-O2', '-o', tmp, src, lib]);
    await rename(tmp, bin);
  } finally {
    await rm(src, { force: true });
    await rm(tmp, { force: true });
  }
  return bin;
}

/**
 * The runtime library (Debian ships no headers or unversioned .so without libntfs-3g-dev):
 * the first `libntfs-3g.so.N` in the usual library directories.
 */
async function findLibntfs(): Promise<string> {
  for (const root of ['/usr/lib', '/lib', '/usr/lib64', '/usr/local/lib']) {
    let dirs: string[];
    try {
      dirs = [root, ...(await readdir(root)).map((d) => join(root, d))];
    } catch {
      continue;
    }
    for (const d of dirs) {
      let names: string[];
      try {
        names = await readdir(d);
      } catch {
        continue;
      }
      const hit = names.filter((n) => /^libntfs-3g\.so\.\d+$/.test(n)).sort()[0];
      if (hit) return join(d, hit);
    }
  }
  throw new ToolMissingError('libntfs-3g.so', 'ntfs-3g');
}

/**
 * NTFS through mkntfs and a small libntfs-3g helper (no FUSE).
 *
 * mkntfs cannot write at an offset, so the volume is built in a scratch file. `-Q` (quick)
 * skips zeroing, keeping the prefill; `-T` fixes every timestamp at the epoch and makes
 * mkntfs's random values (volume serial, GUIDs) the same on every run — so every NTFS volume
 * mkimage builds has the same serial number. The helper freezes the clock for file times.
 */
export const ntfsBuilder: FilesystemBuilder = {
  names: ['ntfs'],
  options: {
    cluster: sizeIn(pow2(512, 2 * 2 ** 20), 'ntfs cluster'),
    label: textMax(128, 'label'),
  },
  content: 'files',
  partitionType: { mbr: '7', gpt: 'msdata' },
  tools: {
    mkntfs: 'ntfs-3g',
    ntfscat: 'ntfs-3g',
    ntfsfix: 'ntfs-3g',
    ntfsinfo: 'ntfs-3g',
    ntfsls: 'ntfs-3g',
    gcc: 'gcc',
  },
  inPlace: false,

  async check(part) {
    // ntfsfix -n exits 0 and prints "processed successfully" on a sound volume, 1 otherwise.
    const r = await run('ntfsfix', ['-n', part]);
    if (!/processed successfully/.test(r.stdout)) throw new Error(`ntfsfix: ${r.stdout}`);
    // ntfsfix only checks mountability, $MFT/$MFTMirr and the boot sectors: also walk every
    // directory index through libntfs-3g.
    const ls = await run('ntfsls', ['-R', '-a', '-p', '/', part]);
    if (ls.stderr.trim() !== '') throw new Error(`ntfsls: ${ls.stderr}`);
    return r.stdout + ls.stdout;
  },

  /** `ntfscat` per path: libntfs-3g has no recursive copy-out. */
  async readFiles(part, paths) {
    const out = new Map<string, string>();
    for (const p of paths) out.set(p, await ntfsSha(part, p));
    return out;
  },

  async build(ctx: BuildContext) {
    const o = ctx.fs.options;
    const args = ['-F', '-q', '-Q', '-T', '-s', '512', '-p', String(ctx.startSector)];
    // Geometry is only used by old boot code; fixed values keep mkntfs from probing.
    args.push('-H', '255', '-S', '63');
    if (o.cluster) args.push('-c', String(parseSize(o.cluster)));
    if (o.label) args.push('-L', o.label);
    args.push(ctx.target, String(Math.floor(ctx.size / 512)));
    await run('mkntfs', args);

    if (ctx.plan.actions.length > 0 || ctx.plan.dirty) {
      const lines: string[] = [];
      for (const act of ctx.plan.actions) {
        switch (act.a) {
          case 'mkdir':
            lines.push(`mkdir\t${act.path}`);
            break;
          case 'rm':
            lines.push(`rm\t${act.path}`);
            break;
          case 'write':
            lines.push(`write\t${act.path}\t${await hostFile(ctx.tmpDir, act.content)}`);
            break;
          case 'pwrite':
            lines.push(
              `pwrite\t${act.path}\t${act.offset}\t${await hostFile(ctx.tmpDir, act.data)}`,
            );
            break;
          case 'truncate':
            lines.push(`truncate\t${act.path}\t${act.size}`);
            break;
        }
      }
      if (ctx.plan.dirty) lines.push('dirty');
      const helper = await ntfsHelper(ctx.helperDir);
      await run(helper, [ctx.target], { input: `${lines.join('\n')}\n` });
    }
    return {
      ...o,
      ...(ctx.plan.dirty ? { dirty: 'true' } : {}),
      cluster: String(parseSize(o.cluster ?? '0') || (await clusterSize(ctx))),
    };
  },
};

/** Cluster size mkntfs chose: bytes per sector × sectors per cluster from the boot sector. */
async function clusterSize(ctx: BuildContext): Promise<number> {
  const fh = await open(ctx.target, 'r');
  try {
    const b = Buffer.alloc(512);
    await fh.read(b, 0, 512, ctx.offset);
    const bytesPerSector = b.readUInt16LE(0x0b);
    const spc = b[0x0d]!;
    // Values above 0x80 encode 2^(256 - v) sectors (clusters of 64K and more).
    return bytesPerSector * (spc > 0x80 ? 2 ** (256 - spc) : spc);
  } finally {
    await fh.close();
  }
}

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
