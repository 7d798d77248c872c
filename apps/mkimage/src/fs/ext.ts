import { mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { resize, type Segment, segmentsLength, slice, toBuffer } from '../content.js';
import { BuildError } from '../errors.js';
import type { Action } from '../model.js';
import { intIn, nonEmpty, pow2, sizeIn, textMax, uuidCheck } from '../options.js';
import { FIXED_TIME, run } from '../run.js';
import { parseSize } from '../size.js';
import {
  type BuildContext,
  type FilesystemBuilder,
  hashTree,
  hostFile,
  stableUuid,
} from './builder.js';

const ENV = { E2FSPROGS_FAKE_TIME: String(FIXED_TIME) };

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const q = (s: string): string => `"${s}"`;

/**
 * ext2/3/4 through mke2fs and debugfs, at an offset inside the disk image.
 *
 * Everything after mke2fs goes through one `debugfs -w` script rather than `mke2fs -d`: mke2fs -d
 * copies the staging files' atime/ctime from the host (not reproducible), while debugfs stamps
 * new inodes with E2FSPROGS_FAKE_TIME. `rm` frees blocks without zeroing them, so deleted data
 * stays in free space.
 *
 * debugfs cannot write into the middle of a file, so append and overwrite ask it for the
 * physical blocks (`bmap -a` maps holes and new blocks) and write the bytes straight into the
 * image, then fix the size with `sif`; truncate punches the blocks past the end and zeroes the
 * tail of the last one. Changed files keep their blocks, as they would under a kernel, which
 * is what incremental-backup tests need. With inline_data the file is rewritten instead.
 */
export const extBuilder: FilesystemBuilder = {
  names: ['ext2', 'ext3', 'ext4'],
  options: {
    block: sizeIn([1024, 2048, 4096, 65536], 'block'),
    features: nonEmpty,
    label: textMax(16, 'label'),
    inodes: intIn(16, 2 ** 32 - 1, 'inodes'),
    inode_size: sizeIn([128, 256, 512, 1024], 'inode_size'),
    cluster: sizeIn(pow2(2048, 2 ** 28), 'cluster'),
    extended: nonEmpty,
    uuid: uuidCheck,
    revision: intIn(0, 1, 'revision'),
    group: intIn(256, 2 ** 19, 'group (blocks per group)'),
    reserved: intIn(0, 50, 'reserved (percent)'),
  },
  content: 'files',
  partitionType: { mbr: '83', gpt: 'linux' },
  tools: { mke2fs: 'e2fsprogs', debugfs: 'e2fsprogs', dumpe2fs: 'e2fsprogs', e2fsck: 'e2fsprogs' },
  inPlace: true,

  async check(part) {
    return (await run('e2fsck', ['-fn', part])).stdout;
  },

  /** The whole tree at once through `debugfs rdump`. */
  async readFiles(part, _paths, dir) {
    const tree = await mkdtemp(join(dir, 'tree-'));
    try {
      const r = await run('debugfs', ['-R', `rdump / ${tree}`, part]);
      const errors = r.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
      if (errors.length > 0) throw new Error(`debugfs rdump: ${errors.join(' / ')}`);
      await rm(join(tree, 'lost+found'), { recursive: true, force: true });
      return await hashTree(tree);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  },

  async build(ctx: BuildContext) {
    const o = ctx.fs.options;
    const uuid = o.uuid ?? stableUuid(ctx.id, 'ext-uuid');
    const args = ['-F', '-q', '-t', ctx.fs.type, '-U', uuid];
    if (o.block) args.push('-b', String(parseSize(o.block)));
    if (o.features) args.push('-O', o.features);
    if (o.label) args.push('-L', o.label);
    if (o.inodes) args.push('-N', o.inodes);
    if (o.inode_size) args.push('-I', String(parseSize(o.inode_size)));
    if (o.cluster) args.push('-C', String(parseSize(o.cluster)));
    if (o.revision) args.push('-r', o.revision);
    if (o.group) args.push('-g', o.group);
    if (o.reserved) args.push('-m', o.reserved);
    // nodiscard: discarding punches holes in a file image and would erase the prefill.
    // lazy init: never zero inode tables or the journal, so a sparse 1 TiB image stays sparse.
    const extended = [
      `hash_seed=${stableUuid(ctx.id, 'ext-hash-seed')}`,
      'nodiscard',
      'lazy_itable_init=1',
      'lazy_journal_init=1',
      'root_owner=0:0',
    ];
    if (ctx.offset > 0) extended.push(`offset=${ctx.offset}`);
    if (o.extended) extended.push(o.extended);
    args.push('-E', extended.join(','), ctx.target, `${Math.floor(ctx.size / 1024)}k`);
    await run('mke2fs', args, { env: ENV });

    const device = ctx.offset > 0 ? `${ctx.target}?offset=${ctx.offset}` : ctx.target;
    const info = await run('dumpe2fs', ['-h', device]);
    const field = (name: string) =>
      new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(info.stdout)?.[1]?.trim() ?? '';
    const blockSize = Number(field('Block size'));
    const features = field('Filesystem features').split(/\s+/);
    const dbg = new Debugfs(device);
    // bigalloc allocates whole clusters; block bitmaps count clusters, setb/freeb take blocks.
    const clusterBlocks = Math.max(1, Number(field('Cluster size') || blockSize) / blockSize);
    const spacers = new Map<string, number>();
    // Files stored inside the inode have no blocks to write into.
    const inPlace = !features.includes('inline_data') && blockSize > 0;

    for (const act of ctx.plan.actions) {
      switch (act.a) {
        case 'mkdir':
          // debugfs resolves "/name" wrongly outside the root directory: always cd first.
          dbg.script.push(`cd ${q(parentOf(act.path))}`, `mkdir ${q(baseOf(act.path))}`);
          break;
        case 'rm': {
          const reserved = spacers.get(act.path);
          if (reserved !== undefined) {
            spacers.delete(act.path);
            if (reserved >= 0) dbg.script.push(`freeb ${reserved}`);
          } else dbg.script.push(`${act.dir ? 'rmdir' : 'rm'} ${q(act.path)}`);
          break;
        }
        case 'write':
          if (act.spacerAfter && inPlace) {
            // A spacer for a fragmented file: reserve the cluster right after the file's last
            // block (if free), so the next piece must go elsewhere; freed again at the end.
            spacers.set(
              act.path,
              await reserveAfter(dbg, act.spacerAfter, blockSize, clusterBlocks),
            );
          } else await writeFile_(dbg, ctx, act.path, act.content);
          break;
        case 'pwrite':
        case 'truncate': {
          const done = inPlace && (await changeInPlace(dbg, ctx, act, blockSize));
          if (!done) {
            dbg.script.push(`rm ${q(act.path)}`);
            await writeFile_(dbg, ctx, act.path, act.content);
          }
          break;
        }
      }
    }
    if (ctx.plan.dirty) {
      // Not cleanly unmounted; with a journal, also "journal needs replaying" as after a crash.
      dbg.script.push('ssv state 0');
      if (features.includes('has_journal')) dbg.script.push('feature needs_recovery');
    }
    await dbg.flush();

    const final = await run('dumpe2fs', ['-h', device]);
    const finalField = (name: string) =>
      new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(final.stdout)?.[1]?.trim() ?? '';
    return {
      ...o,
      uuid,
      ...(ctx.plan.dirty ? { dirty: 'true' } : {}),
      block: String(blockSize),
      features: features.join(','),
      inodes: finalField('Inode count'),
      revision: finalField('Filesystem revision #').split(' ')[0] ?? '',
      group: finalField('Blocks per group'),
      blocks: finalField('Block count'),
    };
  },
};

/** Queues debugfs commands and runs them in one process per batch. */
class Debugfs {
  script: string[] = [];
  constructor(readonly device: string) {}

  /** Runs the queued commands; returns what each printed on stdout, in order. */
  async flush(): Promise<string[]> {
    if (this.script.length === 0) return [];
    const script = this.script;
    this.script = [];
    const r = await run('debugfs', ['-w', '-f', '-', this.device], {
      env: ENV,
      input: `${script.join('\n')}\n`,
    });
    // debugfs exits 0 even when a command fails; its errors are the stderr lines other
    // than the version banner.
    const errors = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
    if (errors.length > 0) {
      throw new BuildError(
        `debugfs failed: ${errors.slice(0, 3).join(' / ')}`,
        'debugfs',
        r.stderr,
      );
    }
    // stdout echoes each command as "debugfs: <command>" followed by its output.
    const outputs: string[] = [];
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('debugfs: ')) outputs.push('');
      else if (outputs.length > 0) outputs[outputs.length - 1] += line;
    }
    return outputs;
  }

  /** Physical block of each logical block of `path` (0 = hole); `alloc` maps holes. */
  async bmap(path: string, blocks: number[], alloc: boolean): Promise<number[] | null> {
    await this.flush();
    this.script = blocks.map((b) => `bmap ${alloc ? '-a ' : ''}${q(path)} ${b}`);
    const out = (await this.flush()).map((s) => (/^\d+$/.test(s.trim()) ? Number(s) : Number.NaN));
    if (out.length !== blocks.length || out.some((n) => Number.isNaN(n))) return null;
    return out;
  }
}

async function writeFile_(dbg: Debugfs, ctx: BuildContext, path: string, content: Segment[]) {
  const host = await hostFile(ctx.tmpDir, content);
  dbg.script.push(`cd ${q(parentOf(path))}`, `write ${q(host)} ${q(baseOf(path))}`);
}

type Change = Extract<Action, { a: 'pwrite' | 'truncate' }>;

/** Applies a pwrite or truncate to the file's own blocks; false when the layout is unsuitable. */
async function changeInPlace(
  dbg: Debugfs,
  ctx: BuildContext,
  act: Change,
  bs: number,
): Promise<boolean> {
  const newSize = segmentsLength(act.content);
  // Bytes to (re)write from the final content: the written range, plus any gap between the
  // old end and the write, which must read as zeros.
  let from: number;
  let to: number;
  if (act.a === 'pwrite') {
    from = Math.min(act.offset, act.oldSize);
    to = act.offset + segmentsLength(act.data);
  } else {
    // Truncate: zero the rest of the block holding the (old or new, whichever is smaller) end.
    const cut = Math.min(act.size, act.oldSize);
    from = cut;
    to = cut % bs === 0 ? cut : Math.min(cut - (cut % bs) + bs, Math.max(act.oldSize, act.size));
  }
  if (to > from) {
    const first = Math.floor(from / bs);
    const last = Math.floor((to - 1) / bs);
    const blocks = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    const phys = await dbg.bmap(act.path, blocks, act.a === 'pwrite');
    if (!phys) return false;
    const fh = await open(ctx.target, 'r+');
    try {
      for (const [i, lb] of blocks.entries()) {
        const p = phys[i]!;
        if (p === 0) continue; // a hole (truncate only): reads as zeros already
        const a = Math.max(from, lb * bs);
        const b = Math.min(to, (lb + 1) * bs);
        const bytes = toBuffer(slice(resize(act.content, Math.max(newSize, b)), a, b));
        await fh.write(bytes, 0, bytes.length, ctx.offset + p * bs + (a - lb * bs));
      }
    } finally {
      await fh.close();
    }
  }
  if (act.a === 'truncate' && act.size < act.oldSize) {
    dbg.script.push(`punch ${q(act.path)} ${Math.ceil(act.size / bs)}`);
  }
  if (newSize !== act.oldSize) dbg.script.push(`sif ${q(act.path)} size ${newSize}`);
  return true;
}

/** Marks the cluster after `file`'s last block in use; returns its first block, or -1. */
async function reserveAfter(
  dbg: Debugfs,
  file: { path: string; size: number },
  bs: number,
  clusterBlocks: number,
): Promise<number> {
  const last = await dbg.bmap(file.path, [Math.floor((file.size - 1) / bs)], false);
  if (!last || last[0] === 0) return -1;
  const next = Math.ceil((last[0]! + 1) / clusterBlocks) * clusterBlocks;
  // One block stands for its whole cluster in the bitmap.
  dbg.script.push(`testb ${next}`);
  const [state] = await dbg.flush();
  if (!state || !/not in use/.test(state)) return -1;
  dbg.script.push(`setb ${next}`);
  return next;
}
