import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Segment } from '../content.js';
import { BuildError } from '../errors.js';
import { intIn, nonEmpty, pow2, sizeIn, textMax, uuidCheck } from '../options.js';
import { run } from '../run.js';
import { parseSize } from '../size.js';
import { type BuildContext, type FilesystemBuilder, hostFile, stableUuid } from './builder.js';

/** mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests. */
const ENV = { TEST_DIR: '/tmp', TEST_DEV: '/dev/null', QA_CHECK_FS: '1' };
/** Where files the spec deletes live until xfs_repair frees them (removed with them). */
const DELETED = '__mkimage_deleted__';

/**
 * XFS through `mkfs.xfs -p protofile`, in a scratch file (mkfs.xfs cannot work at an offset).
 *
 * A protofile copies a finished tree at mkfs time, so the spec is replayed first: files and
 * directories that exist at the end go where the spec puts them; files the spec deletes go into
 * one extra directory, whose inodes are then zeroed with `xfs_db -x` so that `xfs_repair` frees
 * them (and the directory) — their old data stays in free space, as after a real delete.
 * Appends, overwrites and truncates write the final content (no in-place changes). `dirty`
 * rewrites the clean log's unmount record as a commit (the record CRC recomputed), which is
 * what xfs_repair -n and the kernel see as a log that needs replaying. `-K` (no discard) keeps
 * the prefill. File times come from mkfs (not reproducible byte for byte).
 */
export const xfsBuilder: FilesystemBuilder = {
  names: ['xfs'],
  options: {
    block: sizeIn(pow2(512, 65536), 'block'),
    sector: sizeIn(pow2(512, 32768), 'sector'),
    label: textMax(12, 'label'),
    uuid: uuidCheck,
    // Passed through to mkfs.xfs: `metadata=crc=0` → -m crc=0, `inode=sparse=0` → -i sparse=0.
    metadata: nonEmpty,
    inode: nonEmpty,
    agcount: intIn(1, 2 ** 20, 'agcount'),
  },
  content: 'files',
  partitionType: { mbr: '83', gpt: 'linux' },
  tools: { 'mkfs.xfs': 'xfsprogs', xfs_db: 'xfsprogs', xfs_repair: 'xfsprogs' },
  inPlace: false,

  async check(part) {
    const r = await run('xfs_repair', ['-n', part]);
    return r.stdout + r.stderr;
  },

  async readFiles(part, paths) {
    const out = new Map<string, string>();
    const contents = await extractFiles(part, paths);
    for (const [i, p] of paths.entries()) {
      out.set(p, createHash('sha256').update(contents[i]!).digest('hex'));
    }
    return out;
  },

  async build(ctx: BuildContext) {
    const o = ctx.fs.options;
    const uuid = o.uuid ?? stableUuid(ctx.id, 'xfs-uuid');
    const meta = [`uuid=${uuid}`, ...(o.metadata ? [o.metadata] : [])].join(',');
    const args = ['-q', '-f', '-K', '-m', meta];
    if (o.block) args.push('-b', `size=${parseSize(o.block)}`);
    if (o.sector) args.push('-s', `size=${parseSize(o.sector)}`);
    if (o.label) args.push('-L', o.label);
    if (o.inode) args.push('-i', o.inode);
    if (o.agcount) args.push('-d', `agcount=${o.agcount}`);

    const { proto, deleted } = await protofile(ctx);
    const protoPath = join(ctx.tmpDir, 'proto');
    await writeFile(protoPath, proto);
    await run('mkfs.xfs', [...args, '-p', protoPath, ctx.target], { env: ENV });

    if (deleted > 0) {
      const inodes = [...(await listDir(ctx.target, `/${DELETED}`)).values()];
      const root = await listDir(ctx.target, '/');
      inodes.push(root.get(DELETED)!);
      await run('xfs_db', [
        '-x',
        ...inodes.flatMap((i) => ['-c', `inode ${i}`, '-c', 'write core.mode 0']),
        ctx.target,
      ]);
      await run('xfs_repair', [ctx.target]);
    }
    if (ctx.plan.dirty) await dirtyLog(ctx.target);
    const info = await db(ctx.target, ['sb 0', 'p blocksize agcount versionnum']);
    const field = (name: string) => new RegExp(`^${name} = (\\S+)`, 'm').exec(info)?.[1] ?? '';
    return {
      ...o,
      uuid,
      ...(ctx.plan.dirty ? { dirty: 'true' } : {}),
      block: field('blocksize'),
      agcount: field('agcount'),
    };
  },
};

/** A protofile for the spec's final tree, plus the deleted files in their own directory. */
async function protofile(ctx: BuildContext): Promise<{ proto: string; deleted: number }> {
  // Replay the actions for the content each deleted file had when it was removed.
  const live = new Map<string, Segment[]>();
  const gone: Segment[][] = [];
  for (const act of ctx.plan.actions) {
    if (act.a === 'write' || act.a === 'pwrite' || act.a === 'truncate')
      live.set(act.path, act.content);
    else if (act.a === 'rm' && !act.dir) {
      const content = live.get(act.path);
      if (content) gone.push(content);
      live.delete(act.path);
    }
  }
  interface Dir {
    dirs: Map<string, Dir>;
    files: Map<string, string>;
  }
  const root: Dir = { dirs: new Map(), files: new Map() };
  const dirOf = (path: string): Dir => {
    let d = root;
    for (const name of path.split('/').filter(Boolean)) {
      checkName(name, path);
      let next = d.dirs.get(name);
      if (!next) {
        next = { dirs: new Map(), files: new Map() };
        d.dirs.set(name, next);
      }
      d = next;
    }
    return d;
  };
  for (const dir of ctx.plan.dirs) dirOf(dir);
  for (const f of ctx.plan.files) {
    const slash = f.path.lastIndexOf('/');
    const name = f.path.slice(slash + 1);
    checkName(name, f.path);
    dirOf(f.path.slice(0, slash)).files.set(name, await hostFile(ctx.tmpDir, f.content));
  }
  if (gone.length > 0) {
    // Not through dirOf: the reserved name is refused for the spec's own paths only.
    const d: Dir = { dirs: new Map(), files: new Map() };
    root.dirs.set(DELETED, d);
    for (const [i, content] of gone.entries())
      d.files.set(`d${i}`, await hostFile(ctx.tmpDir, content));
  }
  const lines = ['/dev/null', '0 0', 'd--755 0 0'];
  const emit = (d: Dir) => {
    for (const [name, host] of d.files) lines.push(`${name} ---644 0 0 ${host}`);
    for (const [name, sub] of d.dirs) {
      lines.push(`${name} d--755 0 0`);
      emit(sub);
      lines.push('$');
    }
  };
  emit(root);
  lines.push('$');
  return { proto: `${lines.join('\n')}\n`, deleted: gone.length };
}

/** Protofile entries are whitespace-separated tokens. */
function checkName(name: string, path: string): void {
  if (/\s/.test(name) || name === DELETED) {
    throw new BuildError(
      `xfs: cannot put '${path}' in a protofile (whitespace or reserved name)`,
      'mkfs.xfs',
      '',
    );
  }
}

async function db(image: string, commands: string[]): Promise<string> {
  return (await run('xfs_db', ['-r', ...commands.flatMap((c) => ['-c', c]), image])).stdout;
}

/** Inode numbers of the entries of directory `dir`, by name. */
async function listDir(image: string, dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await db(image, [`ls ${dir}`])).split('\n')) {
    const m = /^\d+\s+(\d+)\s+\S+\s+\S+\s+\d+\s+(\S+)/.exec(line.trim());
    if (m && m[2] !== '.' && m[2] !== '..') out.set(m[2]!, Number(m[1]));
  }
  return out;
}

/**
 * Files' bytes read without mounting: inodes from `ls` of each directory, then one xfs_db run
 * printing each inode's size and extent map; the extents are read from the image (a startblock
 * is printed as agno/agbno too; unwritten extents read as zeros).
 */
async function extractFiles(image: string, paths: string[]): Promise<Uint8Array[]> {
  const geo = await db(image, ['sb 0', 'p blocksize agblocks']);
  const num = (name: string) => Number(new RegExp(`^${name} = (\\d+)`, 'm').exec(geo)![1]);
  const blockSize = num('blocksize');
  const agblocks = num('agblocks');
  const dirs = new Map<string, Map<string, number>>();
  const inodes: number[] = [];
  for (const p of paths) {
    const slash = p.lastIndexOf('/');
    const dir = p.slice(0, slash) || '/';
    if (!dirs.has(dir)) dirs.set(dir, await listDir(image, dir));
    const ino = dirs.get(dir)!.get(p.slice(slash + 1));
    if (ino === undefined) throw new Error(`xfs: ${p} not found`);
    inodes.push(ino);
  }
  if (inodes.length === 0) return [];
  const text = await db(
    image,
    inodes.flatMap((i) => [`inode ${i}`, 'p core.size', 'bmap']),
  );
  const parts = text.split(/^(?=core\.size = )/m).filter((s) => s.startsWith('core.size'));
  if (parts.length !== paths.length)
    throw new Error(`xfs_db printed ${parts.length} of ${paths.length} inodes`);
  const fh = await open(image, 'r');
  try {
    const out: Uint8Array[] = [];
    for (const part of parts) {
      const size = Number(/core\.size = (\d+)/.exec(part)![1]);
      const bytes = new Uint8Array(size);
      for (const m of part.matchAll(
        /offset (\d+) startblock \d+ \((\d+)\/(\d+)\) count (\d+) flag (\d)/g,
      )) {
        if (m[5] === '1') continue;
        const start = Number(m[1]) * blockSize;
        const length = Math.min(Number(m[4]) * blockSize, size - start);
        const at = (Number(m[2]) * agblocks + Number(m[3])) * blockSize;
        if (length > 0) await fh.read(bytes, start, length, at);
      }
      out.push(bytes);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * Make the log need recovery: `logformat -c 2` writes a clean log whose only live record (an
 * unmount record, cycle 2) is at the log's first block; its operation becomes a commit and the
 * record CRC (xlog_cksum: header with h_crc zeroed, then h_len bytes of data) is recomputed.
 */
async function dirtyLog(image: string): Promise<void> {
  await run('xfs_db', ['-x', '-c', 'logformat -c 2', image]);
  const sb = await db(image, ['sb 0', 'p blocksize agblocks agblklog logstart']);
  const num = (name: string) => Number(new RegExp(`^${name} = (\\d+)`, 'm').exec(sb)![1]);
  const span = 2 ** num('agblklog');
  const logstart = num('logstart');
  if (logstart === 0) throw new BuildError('xfs: dirty needs an internal log', 'xfs_db', '');
  const at = (Math.floor(logstart / span) * num('agblocks') + (logstart % span)) * num('blocksize');
  const fh = await open(image, 'r+');
  try {
    const rec = new Uint8Array(1024);
    await fh.read(rec, 0, 1024, at);
    const view = new DataView(rec.buffer);
    if (view.getUint32(0) !== 0xfeedbabe)
      throw new BuildError('xfs: no log record after logformat', 'xfs_db', '');
    rec[512 + 9] = 0x02; // oh_flags: XLOG_COMMIT_TRANS instead of XLOG_UNMOUNT_TRANS
    const len = view.getUint32(0x0c);
    let c = crc32cUpdate(0xffffffff, rec.subarray(0, 0x20));
    c = crc32cUpdate(c, new Uint8Array(4));
    c = crc32cUpdate(c, rec.subarray(0x24, 0x144));
    c = crc32cUpdate(c, rec.subarray(512, 512 + len));
    view.setUint32(0x20, ~c >>> 0, true);
    await fh.write(rec, 0, 1024, at);
  } finally {
    await fh.close();
  }
}

const CRC32C = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32cUpdate(register: number, bytes: Uint8Array): number {
  let c = register >>> 0;
  for (const b of bytes) c = CRC32C[(c ^ b) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}
