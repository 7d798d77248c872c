import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from '../errors.js';
import { oneOf, pow2, sizeIn, textMax } from '../options.js';
import { run } from '../run.js';
import { parseSize } from '../size.js';
import {
  type BuildContext,
  type FilesystemBuilder,
  hashTree,
  hostFile,
  stableUuid,
} from './builder.js';

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** mtools skips its sanity checks on image files with odd geometry. */
const ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLSRC: '/dev/null' };

/**
 * FAT12/16/32 through mkfs.vfat --offset and mtools (`image@@offset`), in place.
 * `--invariant` plus a volume id derived from the spec make mkfs reproducible; mtools takes
 * file times from the host file (`-m`, fixed mtime) and SOURCE_DATE_EPOCH. mdel frees clusters
 * without zeroing them. mtools cannot write inside a file, so append, overwrite and truncate
 * replace the whole file (`mcopy -o`).
 */
export const fatBuilder: FilesystemBuilder = {
  names: ['fat'],
  options: {
    fat: oneOf(['12', '16', '32'], 'fat must be 12, 16 or 32'),
    cluster: sizeIn(pow2(512, 64 * 1024), 'fat cluster'),
    label: textMax(11, 'label'),
    // Logical sector size (mkfs.fat -S); cluster= must be at least this.
    sector: sizeIn(pow2(512, 4096), 'fat sector'),
  },
  content: 'files',
  caseInsensitive: true,
  partitionType: {
    mbr: (o) => (o.fat === '12' ? '1' : o.fat === '16' ? 'e' : 'c'),
    gpt: 'msdata',
  },
  tools: {
    'mkfs.vfat': 'dosfstools',
    'fsck.vfat': 'dosfstools',
    mcopy: 'mtools',
    mmd: 'mtools',
    mdel: 'mtools',
    mrd: 'mtools',
    mdir: 'mtools',
  },
  inPlace: true,

  async check(part) {
    return (await run('fsck.vfat', ['-n', part])).stdout;
  },

  /** The whole tree at once through `mcopy -s`. */
  async readFiles(part, _paths, dir) {
    const tree = await mkdtemp(join(dir, 'tree-'));
    try {
      await run('mcopy', ['-s', '-n', '-m', '-i', part, '::/', `${tree}/`], { env: ENV });
      return await hashTree(tree);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  },

  async build(ctx: BuildContext) {
    const o = ctx.fs.options;
    const volid = stableUuid(ctx.id, 'fat-volid').slice(0, 8);
    // mkfs.fat counts -h, -s and --offset in logical sectors.
    const sector = o.sector ? parseSize(o.sector)! : 512;
    const cluster = o.cluster ? parseSize(o.cluster)! : 0;
    if (o.cluster && cluster < sector) {
      throw new BuildError(
        `fat cluster=${o.cluster} is smaller than sector=${o.sector}`,
        'mkfs.vfat',
        '',
      );
    }
    const hidden = (ctx.startSector * 512) / sector;
    const args = ['--invariant', '-i', volid, '-h', String(Math.floor(hidden))];
    if (o.sector) args.push('-S', String(sector));
    if (o.fat) args.push('-F', o.fat);
    if (o.cluster) args.push('-s', String(cluster / sector));
    if (o.label) args.push('-n', o.label);
    if (ctx.offset > 0) args.push(`--offset=${ctx.offset / sector}`);
    args.push(ctx.target, String(Math.floor(ctx.size / 1024)));
    const mk = await run('mkfs.vfat', args);
    const image = `${ctx.target}@@${ctx.offset}`;
    const m = (tool: string, rest: string[]) => run(tool, ['-i', image, ...rest], { env: ENV });

    const actions = ctx.plan.actions;
    let batch = 0;
    for (let i = 0; i < actions.length; i++) {
      const act = actions[i]!;
      if (act.a === 'mkdir') await m('mmd', [`::${act.path}`]);
      else if (act.a === 'rm') await m(act.dir ? 'mrd' : 'mdel', [`::${act.path}`]);
      else if (act.a === 'write') {
        // Consecutive new files in one directory go in one mcopy: the host copies are named
        // as on the image, in a directory of their own.
        const dir = parentOf(act.path);
        const stage = join(ctx.tmpDir, `fat-${++batch}`);
        await mkdir(stage);
        const hosts: string[] = [];
        let j = i;
        for (; j < actions.length; j++) {
          const w = actions[j]!;
          if (w.a !== 'write' || parentOf(w.path) !== dir) break;
          hosts.push(await hostFile(stage, w.content, baseOf(w.path)));
        }
        i = j - 1;
        await m('mcopy', ['-m', ...hosts, `::${dir === '/' ? '/' : `${dir}/`}`]);
      } else {
        const host = await hostFile(ctx.tmpDir, act.content);
        await m('mcopy', ['-o', '-m', host, `::${act.path}`]);
      }
    }
    const fatBits = /(\d+)-bit FAT/.exec(mk.stdout)?.[1];
    if (ctx.plan.dirty) await markDirty(ctx);
    return {
      ...o,
      volid,
      ...(fatBits ? { fat: fatBits } : {}),
      ...(ctx.plan.dirty ? { dirty: 'true' } : {}),
    };
  },
};

/**
 * Sets the "volume dirty" bit Linux keeps in the boot sector (BS_Reserved1 bit 0, at 0x25 on
 * FAT12/16 and 0x41 on FAT32, where BPB_FATSz16 at 0x16 is 0); fsck.vfat reports it.
 */
async function markDirty(ctx: BuildContext): Promise<void> {
  const fh = await open(ctx.target, 'r+');
  try {
    const bs = Buffer.alloc(512);
    await fh.read(bs, 0, 512, ctx.offset);
    const at = bs.readUInt16LE(0x16) === 0 ? 0x41 : 0x25;
    bs[at] = bs[at]! | 1;
    await fh.write(bs, at, 1, ctx.offset + at);
  } finally {
    await fh.close();
  }
}
