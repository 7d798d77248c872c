import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, SpecError } from '../errors.js';
import { oneOf, pow2, sizeIn, textMax, uuidCheck } from '../options.js';
import { run } from '../run.js';
import { parseSize } from '../size.js';
import {
  type BuildContext,
  type FilesystemBuilder,
  hashTree,
  hostFile,
  stableUuid,
} from './builder.js';

/**
 * btrfs through `mkfs.btrfs --rootdir`, in a scratch file, never mounted.
 *
 * `--rootdir` copies a finished tree at mkfs time, so the spec's final tree is built in a host
 * directory first: appends, overwrites and truncates write the final content (no in-place
 * changes). What cannot be done without mounting is refused with a SpecError at its line rather
 * than faked: `delete` (and `file … fragments=N`, which deletes its spacer files) and `dirty`
 * (btrfs-progs cannot leave a log tree behind). `-K` (no discard) keeps the prefill. File times
 * come from the host files (fixed mtime).
 */
export const btrfsBuilder: FilesystemBuilder = {
  names: ['btrfs'],
  options: {
    // mkfs.btrfs -m / -d: the block-group profiles of metadata and data on one device.
    metadata: oneOf(['dup', 'single'], 'metadata must be dup or single'),
    data: oneOf(['dup', 'single'], 'data must be dup or single'),
    label: textMax(255, 'label'),
    uuid: uuidCheck,
    nodesize: sizeIn(pow2(4096, 65536), 'nodesize'),
    sector: sizeIn(pow2(4096, 65536), 'sector'),
    // mkfs.btrfs -O LIST, e.g. `features=^skinny-metadata` or `features=^free-space-tree`.
    features: (v) => (/^[\w^,-]+$/.test(v) ? undefined : 'features must be a comma-separated list'),
    // mkfs.btrfs -M: data and metadata share block groups.
    mixed: null,
    // mkfs.btrfs --compress ALGO[:LEVEL]: files are written compressed (zstd, lzo, zlib).
    compress: (v) =>
      /^(zstd(:([1-9]|1[0-5]))?|lzo|zlib(:[1-9])?)$/.test(v)
        ? undefined
        : 'compress must be zstd[:1-15], lzo or zlib[:1-9]',
    // mkfs.btrfs --subvol: a comma-separated list of directories made subvolumes, each
    // optionally prefixed `ro:`, `default:` or `default-ro:` (as mkfs.btrfs's TYPE:SUBDIR).
    subvol: (v) => (subvolumes(v) ? undefined : SUBVOL_MESSAGE),
  },
  content: 'files',
  partitionType: { mbr: '83', gpt: 'linux' },
  tools: { 'mkfs.btrfs': 'btrfs-progs', btrfs: 'btrfs-progs' },
  inPlace: false,

  async check(part) {
    const r = await run('btrfs', ['check', '--readonly', part]);
    return r.stdout + r.stderr;
  },

  /** The whole tree at once through `btrfs restore` (reads the image, mounts nothing). */
  async readFiles(part, _paths, dir) {
    const tree = await mkdtemp(join(dir, 'btrfs-tree-'));
    try {
      await run('btrfs', ['restore', '-i', part, tree]);
      return await hashTree(tree);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  },

  async build(ctx: BuildContext) {
    refuseUnbuildable(ctx);
    const o = ctx.fs.options;
    const uuid = o.uuid ?? stableUuid(ctx.id, 'btrfs-uuid');
    const args = ['-f', '-q', '-K', '-U', uuid];
    if (o.metadata) args.push('-m', o.metadata);
    if (o.data) args.push('-d', o.data);
    if (o.label) args.push('-L', o.label);
    if (o.nodesize) args.push('-n', String(parseSize(o.nodesize)));
    if (o.sector) args.push('-s', String(parseSize(o.sector)));
    if (o.features) args.push('-O', o.features);
    if (o.mixed !== undefined) args.push('-M');
    if (o.compress) args.push('--compress', o.compress);
    const subvols = o.subvol ? subvolumes(o.subvol)! : [];
    for (const { type, dir } of subvols) args.push('--subvol', `${type}:${dir}`);
    if (o.compress || subvols.length > 0) await needNewMkfs();
    const root = join(ctx.tmpDir, 'rootdir');
    await mkdir(root);
    for (const d of ctx.plan.dirs) await mkdir(join(root, d), { recursive: true });
    for (const { dir } of subvols) await mkdir(join(root, dir), { recursive: true });
    for (const f of ctx.plan.files) {
      const slash = f.path.lastIndexOf('/');
      await mkdir(join(root, f.path.slice(0, slash)), { recursive: true });
      // Content files are written beside the tree (fixed mtime), then moved to their path.
      await rename(await hostFile(ctx.tmpDir, f.content), join(root, f.path));
    }
    const cmd = [...args, '--rootdir', root, ctx.target];
    await run('mkfs.btrfs', cmd);
    // With --rootdir, mkfs.btrfs grows a regular file that is too small for the content (seen
    // with data=dup) instead of failing: the filesystem would not fit its partition.
    const grown = (await stat(ctx.target)).size;
    if (grown > ctx.size) {
      throw new BuildError(
        `btrfs: mkfs.btrfs --rootdir needed ${grown} bytes for this content, the filesystem has ${ctx.size}: make it bigger`,
        `mkfs.btrfs ${cmd.join(' ')}`,
        '',
      );
    }
    return { ...o, uuid };
  },
};

const SUBVOL_MESSAGE =
  'subvol must be a comma-separated list of directories, each optionally prefixed ro:, default: or default-ro: (at most one default)';

/** `subvol=` as mkfs.btrfs --subvol arguments; null when malformed. */
function subvolumes(value: string): Array<{ type: string; dir: string }> | null {
  const out: Array<{ type: string; dir: string }> = [];
  for (const item of value.split(',')) {
    const m = /^(?:(rw|ro|default|default-ro):)?\/?([\w@.-]+(?:\/[\w@.-]+)*)$/.exec(item);
    if (!m || m[2]!.split('/').some((c) => c === '.' || c === '..')) return null;
    out.push({ type: m[1] ?? 'rw', dir: m[2]! });
  }
  return out.filter((s) => s.type.startsWith('default')).length <= 1 ? out : null;
}

let newMkfs: Promise<void> | undefined;

/** `--compress` and `--subvol` arrived in btrfs-progs 6.x; bookworm's 6.2 has neither. */
function needNewMkfs(): Promise<void> {
  newMkfs ??= run('mkfs.btrfs', ['--help'], { okCodes: [0, 1] }).then((r) => {
    const help = r.stdout + r.stderr;
    if (!help.includes('--subvol') || !help.includes('--compress')) {
      throw new BuildError(
        'btrfs: compress= and subvol= need mkfs.btrfs with --compress and --subvol (btrfs-progs 6.14 from bookworm-backports; scripts/setup.sh installs it)',
        'mkfs.btrfs --help',
        help,
      );
    }
  });
  return newMkfs;
}

/** Content lines that need a mounted filesystem: a SpecError at the first one. */
function refuseUnbuildable(ctx: BuildContext): void {
  for (const op of ctx.fs.content) {
    const why =
      op.op === 'delete'
        ? 'btrfs: delete needs a mounted filesystem; mkimage builds btrfs with mkfs.btrfs --rootdir only'
        : op.op === 'file' && op.fragments
          ? 'btrfs: fragments= deletes spacer files, which needs a mounted filesystem'
          : op.op === 'dirty'
            ? 'btrfs: dirty is not supported (btrfs-progs cannot leave a log tree to replay)'
            : undefined;
    if (why) throw new SpecError(why, op.pos.line, op.pos.column);
  }
}
