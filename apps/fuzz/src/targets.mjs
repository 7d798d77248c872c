// What each fuzz target parses, and the real images its mutants start from. `prepare` runs on
// the main thread (it builds images with the real tools); `run` runs in the fuzz worker on one
// mutant and either resolves (input accepted) or rejects (input refused).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContainer } from '@diskube/container';
import { CorruptError, crc32Update, memorySource } from '@diskube/core';
import { extDriver } from '@diskube/ext';
import { verifyBackup } from '@diskube/format';
import { buildImage } from '@diskube/mkimage';
import { ntfsDriver } from '@diskube/ntfs';
import { defaultDrivers, inspectImage } from 'diskube';
import { backup } from 'diskube/node';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * @typedef {{ name: string, bytes: Uint8Array, regions: Array<[number, number]>,
 *             referenced?: ReferencedBlocks }} Seed
 * @typedef {{ blockSize: number, blocks: Array<[number, number]>, bitmaps: Array<[number, number]> }} ReferencedBlocks
 *   The blocks the seed's in-use inodes reference (data, extent-tree and indirect blocks), as
 *   `[first, count]` runs, and the byte ranges of its block bitmaps.
 * @typedef {{ blockSize: number, ranges: Array<[number, number]> }} UsedSummary
 * @typedef {{ tools: string[], prepare(): Promise<Seed[]>,
 *             run(bytes: Uint8Array): Promise<UsedSummary | null | unknown>,
 *             everyByteChecked?: boolean, cases?: number }} Target
 *   `everyByteChecked`: every byte of the seed is under a checksum, so no mutant may be accepted.
 *   `cases`: at most this many mutants in the test suite (large seeds); `pnpm fuzz` runs any.
 *   A `run` that resolves a `UsedSummary` (used blocks as `[first, count]` runs) is checked
 *   against the seed's `referenced` blocks when the mutants left the bitmaps alone.
 */

/** @param {string} spec */
async function built(spec) {
  const { image, manifest } = await buildImage(spec);
  return { image, manifest, bytes: new Uint8Array(await readFile(image)) };
}

/**
 * A driver's whole job on a mutant: probe, then the used map when it claims the bytes.
 * @returns {Promise<UsedSummary | null>}
 */
async function drive(/** @type {typeof extDriver} */ driver, /** @type {Uint8Array} */ bytes) {
  const source = memorySource(bytes);
  if ((await driver.probe(source)) === null) return null;
  const result = await driver.usedBlocks(source);
  return { blockSize: result.blockSize, ranges: result.used.toRanges() };
}

/**
 * What e2fsck's pass 1 would find: every block an in-use inode references, read with debugfs
 * (`stat` lists data, extent-tree and indirect blocks), and where the block bitmaps are.
 * @param {string} image
 * @returns {ReferencedBlocks}
 */
function extReferenced(image) {
  const dump = execFileSync('dumpe2fs', [image], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const number = (/** @type {RegExp} */ re) => Number(re.exec(dump)?.[1]);
  const blockSize = number(/^Block size:\s+(\d+)/m);
  const perGroup = number(/^Inodes per group:\s+(\d+)/m);
  const bitmaps = [...dump.matchAll(/Block bitmap at (\d+)/g)].map(
    (m) => /** @type {[number, number]} */ ([Number(m[1]) * blockSize, blockSize]),
  );
  const inodes = [];
  for (const [g, m] of [...dump.matchAll(/^\s+Free inodes: (.*)$/gm)].entries()) {
    const free = new Set();
    for (const part of (m[1] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      for (let i = a ?? 0; i <= (b ?? a ?? 0); i++) free.add(i);
    }
    for (let i = g * perGroup + 1; i <= (g + 1) * perGroup; i++) if (!free.has(i)) inodes.push(i);
  }
  const stat = execFileSync('debugfs', ['-f', '-', image], {
    input: inodes.map((i) => `stat <${i}>`).join('\n'),
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
  const blocks = new Set();
  let listing = false;
  for (const line of stat.split('\n')) {
    if (/^(BLOCKS|EXTENTS):/.test(line)) listing = true;
    else if (line.trim() === '' || line.startsWith('TOTAL') || line.startsWith('debugfs'))
      listing = false;
    else if (listing) {
      for (const m of line.matchAll(/\):(\d+)(?:-(\d+))?/g)) {
        const first = Number(m[1]);
        for (let b = first; b <= Number(m[2] ?? first); b++) blocks.add(b);
      }
    }
  }
  const sorted = [...blocks].sort((a, b) => a - b);
  /** @type {Array<[number, number]>} */
  const runs = [];
  for (const b of sorted) {
    const last = runs.at(-1);
    if (last && last[0] + last[1] === b) last[1]++;
    else runs.push([b, 1]);
  }
  return { blockSize, blocks: runs, bitmaps };
}

const EXT_FILES = `
    file /etc/hostname "fuzz"
    file /var/log.txt 300K text
    file /data/blob 2M random seed=2
    files /many 40 small
    file /stale 1M random seed=3
    delete /stale`;

const LVM_DISK = `disk 12M gpt
  partition rest lvm vg=fuzz-vg extent=1M
    lv root 3M ext4
      file /etc/hostname "fuzz"
      file /a 256K random seed=6
    lv swap 1M swap
    lv home 3M ext4 segments=2
      file /h 128K random seed=7`;

/** LVM2's CRC: the CRC-32 register from 0xf597a6cf, no final inversion. */
const lvmCrc = (/** @type {Uint8Array} */ b) => crc32Update(0xf597a6cf, b);

/**
 * Re-computes the checksums a mutant broke (label sector, metadata area header, committed
 * metadata text) so that the mutation reaches the parsers behind them. mkimage's PVs: label in
 * sector 1, one metadata area at 4096 whose text does not wrap.
 * @param {Uint8Array} disk @param {number} pv the PV's offset in the disk
 */
function fixLvmChecksums(disk, pv) {
  if (disk.length < pv + 8192) return;
  const view = new DataView(disk.buffer, disk.byteOffset, disk.byteLength);
  const label = pv + 512;
  const mda = pv + 4096;
  const textAt = Number(view.getBigUint64(mda + 0x28, true));
  const textSize = Number(view.getBigUint64(mda + 0x30, true));
  if (textAt > 0 && textSize > 0 && mda + textAt + textSize <= Math.min(pv + LVM_PV, disk.length)) {
    view.setUint32(mda + 0x38, lvmCrc(disk.subarray(mda + textAt, mda + textAt + textSize)), true);
  }
  view.setUint32(mda, lvmCrc(disk.subarray(mda + 4, mda + 512)), true);
  view.setUint32(label + 0x10, lvmCrc(disk.subarray(label + 0x14, label + 512)), true);
}

/** Where LVM_DISK's PV starts (its GPT's first partition); `run` works in a worker, without the manifest. */
const LVM_PV = 1024 * 1024;

/** The PV of LVM_DISK, built; `prepare` checks it is where `run` looks. */
async function lvmDisk() {
  const disk = await built(LVM_DISK);
  if (disk.manifest.partitions[0]?.offset !== LVM_PV) throw new Error('the PV moved');
  return disk;
}

const inspectBytes = (/** @type {Uint8Array} */ bytes) => inspectImage(memorySource(bytes));

/** A driver diskube ships, by name (the fuzz package depends on `diskube`, not on each driver). */
/**
 * Where a small btrfs keeps its metadata: the primary superblock and the start of its SYSTEM
 * (chunk tree) and METADATA chunks (root, extent, fs and csum trees), every physical copy, as
 * btrfs-progs' chunk tree dump places them.
 * @param {string} image
 * @returns {Array<[number, number]>}
 */
function btrfsMetadata(image) {
  const dump = execFileSync('btrfs', ['inspect-internal', 'dump-tree', '-t', 'chunk', image], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  /** @type {Array<[number, number]>} */
  const regions = [[64 * KiB, 4 * KiB]];
  const chunks = dump.split('CHUNK_ITEM').slice(1);
  for (const chunk of chunks) {
    const type = /type (\S+)/.exec(chunk)?.[1] ?? '';
    const length = Number(/length (\d+)/.exec(chunk)?.[1]);
    if (!/SYSTEM|METADATA/.test(type)) continue;
    // Every copy (both stripes of DUP): mutations then also hit a block whose other copy is
    // damaged too, not only blocks the driver can read again from an intact copy.
    for (const m of chunk.matchAll(/stripe \d+ devid \d+ offset (\d+)/g)) {
      const offset = Number(m[1]);
      if (offset > 0) regions.push([offset, Math.min(length, 1 * MiB)]);
    }
  }
  if (regions.length < 3)
    throw new Error(`btrfs fuzz seed: no SYSTEM and METADATA chunks in\n${dump}`);
  return regions;
}

const driver = (/** @type {string} */ name) =>
  /** @type {typeof extDriver} */ (defaultDrivers.find((d) => d.name === name));

/** @type {Record<string, Target>} */
export const TARGETS = {
  ext: {
    tools: ['mke2fs', 'debugfs'],
    async prepare() {
      const ext4 = await built(`disk 16M\n  filesystem ext4${EXT_FILES}`);
      const ext2 = await built(`disk 8M\n  filesystem ext2 block=1K${EXT_FILES}`);
      // The superblock, descriptors, bitmaps and inode tables of these small images all lie in
      // the first MiB (flex_bg packs them at the start).
      return [
        {
          name: 'ext4',
          bytes: ext4.bytes,
          regions: [[0, 1 * MiB]],
          referenced: extReferenced(ext4.image),
        },
        {
          name: 'ext2 1K',
          bytes: ext2.bytes,
          regions: [[0, 512 * KiB]],
          referenced: extReferenced(ext2.image),
        },
      ];
    },
    run: (bytes) => drive(extDriver, bytes),
  },
  ntfs: {
    tools: ['mkntfs', 'gcc'],
    async prepare() {
      const ntfs = await built(`disk 16M\n  filesystem ntfs cluster=4K${EXT_FILES}`);
      const view = new DataView(ntfs.bytes.buffer);
      const cluster = view.getUint16(0x0b, true) * (ntfs.bytes[0x0d] ?? 1);
      const mft = Number(view.getBigUint64(0x30, true)) * cluster;
      return [
        {
          name: 'ntfs',
          bytes: ntfs.bytes,
          // Boot sector, $MFT's first records ($MFT, $Bitmap, $Volume, root index, $LogFile head).
          regions: [
            [0, 8 * KiB],
            [mft, 64 * KiB],
            [ntfs.bytes.length - 512, 512],
          ],
        },
      ];
    },
    run: (bytes) => drive(ntfsDriver, bytes),
  },
  partition: {
    tools: ['sfdisk', 'mke2fs', 'debugfs'],
    async prepare() {
      const gpt = await built(`disk 24M gpt
  partition 12M ext4
    file /a "x"
  partition rest swap`);
      const mbr = await built(`disk 24M mbr
  partition 8M ext4
  extended rest
    partition 4M raw
    partition rest swap`);
      /** @param {typeof gpt} b @returns {Array<[number, number]>} */
      const regions = (b) => [
        [0, 34 * 512],
        [b.bytes.length - 33 * 512, 33 * 512],
        ...b.manifest.partitions.map(
          (p) => /** @type {[number, number]} */ ([p.offset - 512, 4 * KiB]),
        ),
      ];
      return [
        { name: 'gpt', bytes: gpt.bytes, regions: regions(gpt) },
        { name: 'mbr', bytes: mbr.bytes, regions: regions(mbr) },
      ];
    },
    run: (bytes) => inspectImage(memorySource(bytes)),
  },
  lvm: {
    tools: ['losetup', 'pvcreate', 'vgcfgrestore', 'sfdisk', 'mke2fs', 'mkswap'],
    async prepare() {
      const disk = await lvmDisk();
      const pv = LVM_PV;
      // The label sector and the metadata area header: every byte under a checksum or checked.
      return [{ name: 'pv label and metadata area', bytes: disk.bytes, regions: [[pv, 8 * KiB]] }];
    },
    run: inspectBytes,
  },
  'lvm metadata': {
    tools: ['losetup', 'pvcreate', 'vgcfgrestore', 'sfdisk', 'mke2fs', 'mkswap'],
    async prepare() {
      const disk = await lvmDisk();
      const pv = LVM_PV;
      const view = new DataView(disk.bytes.buffer);
      const textAt = pv + 4096 + Number(view.getBigUint64(pv + 4096 + 0x28, true));
      const textSize = Number(view.getBigUint64(pv + 4096 + 0x30, true));
      // Header fields and the metadata text, with the checksums fixed after each mutation so the
      // text parser and the layout checks see it (the first six bytes are the label's id).
      return [
        {
          name: 'pv metadata text',
          bytes: disk.bytes,
          regions: [
            [pv + 512 + 0x14, 512 - 0x14],
            [pv + 4096 + 4, 512 - 4],
            [textAt, textSize],
          ],
        },
      ];
    },
    async run(bytes) {
      fixLvmChecksums(bytes, LVM_PV);
      return inspectBytes(bytes);
    },
  },
  xfs: {
    tools: ['mkfs.xfs', 'xfs_db'],
    async prepare() {
      const xfs = await built(`disk 32M\n  filesystem xfs${EXT_FILES}`);
      const view = new DataView(xfs.bytes.buffer);
      // sb_blocksize (0x04) × sb_agblocks (0x54): where AG 1's headers start.
      const ag = view.getUint32(0x04) * view.getUint32(0x54);
      return [
        {
          name: 'xfs v5',
          bytes: xfs.bytes,
          // AG 0's and AG 1's headers (superblock, AGF, AGI, AGFL) and their btree roots.
          regions: [
            [0, 64 * KiB],
            [ag, 64 * KiB],
          ],
        },
      ];
    },
    run: (bytes) => drive(driver('xfs'), bytes),
  },
  btrfs: {
    tools: ['mkfs.btrfs', 'btrfs'],
    cases: 100,
    async prepare() {
      // mkfs.btrfs's smallest image is 109 MiB; each mutant is a copy of it (~0.1 s a case).
      // The ext file set without its deleted file (the btrfs builder cannot delete unmounted).
      const files = EXT_FILES.replace(/\n\s*file \/stale.*\n\s*delete \/stale/, '');
      const fs = await built(`disk 128M\n  filesystem btrfs${files}`);
      return [{ name: 'btrfs', bytes: fs.bytes, regions: btrfsMetadata(fs.image) }];
    },
    run: (bytes) => drive(driver('btrfs'), bytes),
  },
  fat: {
    tools: ['mkfs.vfat', 'mcopy'],
    async prepare() {
      const files = EXT_FILES.replace('    delete /stale', '');
      const fat16 = await built(`disk 16M\n  filesystem fat fat=16${files}`);
      const fat32 = await built(`disk 40M\n  filesystem fat fat=32 cluster=512${files}`);
      // The boot sector, the FATs and the root directory all sit in the first few hundred KiB.
      return [
        { name: 'fat16', bytes: fat16.bytes, regions: [[0, 256 * KiB]] },
        { name: 'fat32', bytes: fat32.bytes, regions: [[0, 1 * MiB]] },
      ];
    },
    run: (bytes) => drive(driver('fat'), bytes),
  },
  container: {
    tools: ['qemu-img', 'sfdisk', 'mke2fs', 'debugfs'],
    async prepare() {
      const raw = await built(`disk 8M gpt
  partition rest ext4
    file /a 1M random seed=4`);
      const dir = await mkdtemp(join(tmpdir(), 'diskube-fuzz-'));
      /** @type {Seed[]} */
      const seeds = [];
      for (const [name, args] of /** @type {Array<[string, string[]]>} */ ([
        ['qcow2', ['-O', 'qcow2']],
        ['qcow2 compressed', ['-O', 'qcow2', '-c']],
        ['vdi', ['-O', 'vdi']],
        ['vmdk', ['-O', 'vmdk', '-o', 'subformat=monolithicSparse']],
        ['vmdk stream', ['-O', 'vmdk', '-o', 'subformat=streamOptimized']],
        ['vhd', ['-O', 'vpc', '-o', 'subformat=dynamic,force_size=on']],
        ['vhdx', ['-O', 'vhdx']],
      ])) {
        const out = join(dir, 'image');
        execFileSync('qemu-img', ['convert', ...args, raw.image, out]);
        const bytes = new Uint8Array(await readFile(out));
        const tail = Math.min(bytes.length, 64 * KiB);
        seeds.push({
          name,
          bytes,
          regions: [
            [0, 512 * KiB],
            [bytes.length - tail, tail],
          ],
        });
      }
      await rm(dir, { recursive: true, force: true });
      return seeds;
    },
    async run(bytes) {
      const { disk } = await openContainer(memorySource(bytes));
      // Read a bounded sample of the virtual disk (a mutant may claim any size) and walk the
      // unallocated ranges, as backup does.
      const buffer = new Uint8Array(64 * KiB);
      const step = Math.max(buffer.length, Math.floor(disk.size / 64));
      for (let at = 0; at + buffer.length <= disk.size && at < 64 * step; at += step) {
        await disk.read(at, buffer);
      }
      let ranges = 0;
      for await (const _ of disk.unallocatedRanges()) if (++ranges > 100_000) break;
    },
  },
  format: {
    tools: ['mke2fs', 'debugfs'],
    // SPEC.md: every byte of a backup is under exactly one checksum.
    everyByteChecked: true,
    async prepare() {
      const image = await built(`disk 8M\n  filesystem ext4${EXT_FILES.replace('2M', '512K')}`);
      const dir = await mkdtemp(join(tmpdir(), 'diskube-fuzz-'));
      const out = join(dir, 'seed.dkb');
      await backup({ image: image.image, out, threads: 0 });
      const bytes = new Uint8Array(await readFile(out));
      await rm(dir, { recursive: true, force: true });
      return [{ name: 'snapshot', bytes, regions: [[0, bytes.length]] }];
    },
    async run(bytes) {
      const dir = await mkdtemp(join(tmpdir(), 'diskube-fuzz-'));
      try {
        const path = join(dir, 'mutant.dkb');
        await writeFile(path, bytes);
        const report = await verifyBackup(path);
        const problem = report.problems[0];
        // Damage found is the expected answer for most mutants: a typed refusal, like restore's.
        if (problem) {
          throw new CorruptError(problem.message, {
            structure: problem.structure,
            reason: problem.reason ?? 'verify',
          });
        }
        return report;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
};
