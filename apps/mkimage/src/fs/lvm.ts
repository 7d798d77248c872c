import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VolumeSpec } from '../ast.js';
import type { ManifestVolume } from '../build.js';
import { fileRecords, writeSegments } from '../content.js';
import { planContent } from '../model.js';
import { sizeIn } from '../options.js';
import { run } from '../run.js';
import { type BuildContext, type FilesystemBuilder, stableUuid } from './builder.js';

const MiB = 1 << 20;
/** Where pvcreate puts the first extent by default (after a 1 MiB metadata area). */
const PE_START = MiB;
const STRIPE_SIZE = 64 * 1024;
/** LVM commands see only our loop device and leave no backups or archives in /etc/lvm. */
const LVM_CONFIG = 'devices { use_devicesfile = 0 } backup { backup = 0 archive = 0 }';

type Layout = ManifestVolume['segments'];

/** LVM's uuid grouping (6-4-4-4-4-4-6) of a 32-character id. */
function lvmId(id: string, purpose: string): string {
  const raw = stableUuid(id, purpose).replaceAll('-', '');
  const groups = [6, 4, 4, 4, 4, 4, 6];
  const parts: string[] = [];
  for (let at = 0, g = 0; g < groups.length; at += groups[g]!, g++) {
    parts.push(raw.slice(at, at + groups[g]!));
  }
  return parts.join('-');
}

/**
 * Places the volumes on the PV's extents, in spec order from extent 0. `segments=N` writes the
 * LV as N pieces in reverse order with a free extent between them (so LV order ≠ disk order);
 * `stripes=N` is one striped segment over N consecutive areas.
 */
function allocate(volumes: VolumeSpec[], extent: number, peCount: number) {
  let cursor = 0;
  return volumes.map((v) => {
    let extents = Math.ceil(v.size / extent);
    extents = Math.ceil(extents / v.stripes) * v.stripes;
    const pieces: Array<{ le: number; count: number; pe: number[] }> = [];
    if (v.stripes > 1) {
      const area = extents / v.stripes;
      const pe = Array.from({ length: v.stripes }, (_, s) => cursor + s * area);
      pieces.push({ le: 0, count: extents, pe });
      cursor += extents;
    } else {
      const n = Math.min(v.segments, extents);
      const sizes = Array.from(
        { length: n },
        (_, k) => Math.floor(extents / n) + (k < extents % n ? 1 : 0),
      );
      const starts: number[] = [];
      for (let k = 0, le = 0; k < n; le += sizes[k]!, k++) starts.push(le);
      for (let k = n - 1; k >= 0; k--) {
        pieces[k] = { le: starts[k]!, count: sizes[k]!, pe: [cursor] };
        cursor += sizes[k]! + (k > 0 ? 1 : 0);
      }
      if (n > 1) cursor++;
    }
    if (cursor > peCount) throw new Error(`volumes need ${cursor} extents, the PV has ${peCount}`);
    return { volume: v, extents, pieces };
  });
}

type Placed = ReturnType<typeof allocate>[number];

function metadataText(
  ctx: BuildContext,
  vg: string,
  extent: number,
  peCount: number,
  placed: Placed[],
) {
  const lvs = placed.map(({ volume, pieces }) => {
    const segments = pieces.map((p, k) => {
      const stripes = p.pe.map((pe) => `"pv0", ${pe}`).join(', ');
      const striped = p.pe.length > 1 ? `stripe_size = ${STRIPE_SIZE / 512}\n` : '';
      return `segment${k + 1} {\nstart_extent = ${p.le}\nextent_count = ${p.count}\ntype = "striped"\nstripe_count = ${p.pe.length}\n${striped}stripes = [${stripes}]\n}\n`;
    });
    return `${volume.name} {\nid = "${lvmId(ctx.id, `lv:${volume.name}`)}"\nstatus = ["READ", "WRITE", "VISIBLE"]\nflags = []\nsegment_count = ${pieces.length}\n${segments.join('')}}\n`;
  });
  return `${vg} {
id = "${lvmId(ctx.id, 'vg')}"
seqno = 1
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
flags = []
extent_size = ${extent / 512}
max_lv = 0
max_pv = 0
metadata_copies = 0
physical_volumes {
pv0 {
id = "${lvmId(ctx.id, 'pv')}"
device = "/dev/loop0"
status = ["ALLOCATABLE"]
flags = []
dev_size = ${ctx.size / 512}
pe_start = ${PE_START / 512}
pe_count = ${peCount}
}
}
logical_volumes {
${lvs.join('')}}
}
contents = "Text Format Volume Group"
version = 1
description = "mkimage"
creation_host = "mkimage"
creation_time = 0
`;
}

/** Writes the PV label and the VG metadata with pvcreate and vgcfgrestore on a loop device. */
async function writeMetadata(ctx: BuildContext, vg: string, text: string): Promise<void> {
  const file = join(ctx.tmpDir, 'vg.txt');
  await writeFile(file, text);
  const { stdout } = await run('losetup', [
    '-f',
    '--show',
    '-o',
    String(ctx.offset),
    '--sizelimit',
    String(ctx.size),
    ctx.target,
  ]);
  const loop = stdout.trim();
  try {
    const common = ['--config', LVM_CONFIG, '--devices', loop];
    await run('pvcreate', [
      ...common,
      '-ff',
      '-y',
      '-u',
      lvmId(ctx.id, 'pv'),
      '--norestorefile',
      loop,
    ]);
    await run('vgcfgrestore', [...common, '-f', file, vg]);
  } finally {
    await run('losetup', ['-d', loop]);
  }
}

/** Copies `length` bytes of `src` at `from` to `dst` at `to`, leaving all-zero chunks alone. */
async function copy(
  src: Awaited<ReturnType<typeof open>>,
  dst: Awaited<ReturnType<typeof open>>,
  from: number,
  to: number,
  length: number,
) {
  const buf = Buffer.alloc(Math.min(length, MiB));
  for (let done = 0; done < length; done += buf.length) {
    const n = Math.min(buf.length, length - done);
    await src.read(buf, 0, n, from + done);
    if (buf.subarray(0, n).some((x) => x !== 0)) await dst.write(buf, 0, n, to + done);
  }
}

/** Every chunk of a segment: LV offset, partition offset, length (one for linear). */
export function* segmentChunks(segment: Layout[number]): Generator<[number, number, number]> {
  const n = segment.areas.length;
  if (n === 1) {
    yield [segment.start, segment.areas[0]!, segment.length];
    return;
  }
  for (let at = 0, chunk = 0; at < segment.length; at += segment.stripeSize, chunk++) {
    const area = segment.areas[chunk % n]!;
    yield [
      segment.start + at,
      area + Math.floor(chunk / n) * segment.stripeSize,
      segment.stripeSize,
    ];
  }
}

/**
 * Assembles one LV of an `lvm` partition into its own file from the disk image `image`, through
 * the segments mkimage recorded (so tests can fsck it and read its files with the filesystem's
 * own tools).
 */
export async function assembleVolume(
  image: string,
  partitionOffset: number,
  v: ManifestVolume,
  out: string,
) {
  const a = await open(image, 'r');
  const b = await open(out, 'w');
  try {
    await b.truncate(v.size);
    for (const segment of v.segments) {
      for (const [lv, pv, length] of segmentChunks(segment))
        await copy(a, b, partitionOffset + pv, lv, length);
    }
  } finally {
    await a.close();
    await b.close();
  }
}

/**
 * An LVM2 physical volume holding one volume group. Its `lv` lines become logical volumes laid
 * out by `vgcfgrestore -f` (no device-mapper needed); each LV's filesystem is built in a scratch
 * file by its own builder and copied to the LV's extents.
 */
export const lvmBuilder: FilesystemBuilder = {
  names: ['lvm'],
  options: {
    vg: (v) =>
      /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,63}$/.test(v)
        ? undefined
        : 'vg must be 1 to 64 of A-Z a-z 0-9 + _ . -',
    extent: sizeIn([MiB, 2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB], 'extent'),
  },
  content: 'volumes',
  partitionType: { mbr: '8e', gpt: 'lvm' },
  tools: { losetup: 'mount', pvcreate: 'lvm2', vgcfgrestore: 'lvm2' },
  inPlace: true,
  async build(ctx: BuildContext) {
    // Loaded here, not at the top: the registry lists this builder, and a static import cycle
    // would leave one of the two undefined depending on which module is loaded first.
    const { builderOf } = await import('./registry.js');
    const vg = ctx.fs.options.vg ?? 'vg0';
    const extent = ctx.fs.options.extent
      ? Number.parseInt(ctx.fs.options.extent, 10) * MiB
      : 4 * MiB;
    const peCount = Math.floor((ctx.size - PE_START) / extent);
    const placed = allocate(ctx.fs.volumes ?? [], extent, peCount);
    await writeMetadata(ctx, vg, metadataText(ctx, vg, extent, peCount, placed));
    for (const { volume, extents, pieces } of placed) {
      const size = extents * extent;
      const builder = builderOf(volume.filesystem.type)!;
      const plan = planContent(volume.filesystem, builder.caseInsensitive === true);
      const dir = join(ctx.tmpDir, `lv-${volume.name}`);
      await mkdir(dir);
      const scratch = join(ctx.tmpDir, `lv-${volume.name}.img`);
      const fh = await open(scratch, 'w');
      try {
        await fh.truncate(size);
        if (plan.prefill?.kind === 'random') {
          await writeSegments(
            fh,
            [{ kind: 'random', key: `seed:${plan.prefill.seed}`, start: 0, length: size }],
            0,
          );
        }
      } finally {
        await fh.close();
      }
      const options = await builder.build({
        ...ctx,
        target: scratch,
        offset: 0,
        size,
        startSector: 0,
        fs: volume.filesystem,
        plan,
        tmpDir: dir,
        id: `${ctx.id}:lv:${volume.name}`,
        volumes: [],
      });
      const segments: Layout = pieces.map((p) => ({
        start: p.le * extent,
        length: p.count * extent,
        stripeSize: p.pe.length > 1 ? STRIPE_SIZE : 0,
        areas: p.pe.map((pe) => PE_START + pe * extent),
      }));
      const src = await open(scratch, 'r');
      const dst = await open(ctx.target, 'r+');
      try {
        for (const segment of segments) {
          for (const [lv, pv, length] of segmentChunks(segment))
            await copy(src, dst, lv, ctx.offset + pv, length);
        }
      } finally {
        await src.close();
        await dst.close();
      }
      await rm(scratch, { force: true });
      ctx.volumes.push({
        name: volume.name,
        size,
        fs: volume.filesystem.type,
        options,
        files: fileRecords(plan.files),
        dirs: plan.dirs,
        segments,
      });
    }
    return { ...ctx.fs.options, vg, extent: String(extent), pv_uuid: lvmId(ctx.id, 'pv') };
  },
};
