// What each fuzz target parses, and the real images its mutants start from. `prepare` runs on
// the main thread (it builds images with the real tools); `run` runs in the fuzz worker on one
// mutant and either resolves (input accepted) or rejects (input refused).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContainer } from '@diskube/container';
import { CorruptError, memorySource } from '@diskube/core';
import { extDriver } from '@diskube/ext';
import { verifyBackup } from '@diskube/format';
import { buildImage } from '@diskube/mkimage';
import { ntfsDriver } from '@diskube/ntfs';
import { inspectImage } from 'diskube';
import { backup } from 'diskube/node';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * @typedef {{ name: string, bytes: Uint8Array, regions: Array<[number, number]> }} Seed
 * @typedef {{ tools: string[], prepare(): Promise<Seed[]>, run(bytes: Uint8Array): Promise<unknown>,
 *             everyByteChecked?: boolean }} Target
 *   `everyByteChecked`: every byte of the seed is under a checksum, so no mutant may be accepted.
 */

/** @param {string} spec */
async function built(spec) {
  const { image, manifest } = await buildImage(spec);
  return { image, manifest, bytes: new Uint8Array(await readFile(image)) };
}

/** A driver's whole job on a mutant: probe, then the used map when it claims the bytes. */
async function drive(/** @type {typeof extDriver} */ driver, /** @type {Uint8Array} */ bytes) {
  const source = memorySource(bytes);
  if ((await driver.probe(source)) === null) return null;
  return driver.usedBlocks(source);
}

const EXT_FILES = `
    file /etc/hostname "fuzz"
    file /var/log.txt 300K text
    file /data/blob 2M random seed=2
    files /many 40 small
    file /stale 1M random seed=3
    delete /stale`;

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
        { name: 'ext4', bytes: ext4.bytes, regions: [[0, 1 * MiB]] },
        { name: 'ext2 1K', bytes: ext2.bytes, regions: [[0, 512 * KiB]] },
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
