import { execFileSync } from 'node:child_process';
import { copyFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { memorySource } from '@diskube/core';
import { bitmapDifferences } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { extractedFiles, fsck, requireTools, scratchDir } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { btrfsDriver } from './driver.js';
import {
  buildBtrfs,
  CONVERTED_EXT4,
  MATRIX,
  partcloneExplained,
  partcloneView,
  progsContent,
  progsView,
  readImage,
} from './images.test-support.js';

const tools = requireTools(
  ['mkfs.btrfs', 'btrfs', 'btrfs-convert', 'partclone.btrfs', 'mke2fs', 'debugfs', 'e2fsck'],
  'btrfs image tests',
);

describe.runIf(tools)('btrfs used blocks against btrfs-progs and partclone', () => {
  for (const [name, spec] of Object.entries(MATRIX)) {
    it(name, async () => {
      const path = await buildBtrfs(spec);
      const result = await btrfsDriver.usedBlocks(memorySource(readImage(path)));
      expect(result.filesystem).toBe('btrfs');
      expect(result.blockSize).toBe(4096);
      expect(result.blockCount * 4096).toBe(statSync(path).size);
      expect(result.tail).toMatchObject({ length: 0, used: false });

      // btrfs-progs' dump of the extent and chunk trees, same policy: exactly equal.
      const progs = progsView(path, result.blockSize, result.blockCount);
      expect(bitmapDifferences(result.used, progs)).toEqual({ missing: [], extra: [] });

      // partclone 0.3.23: it keeps blocks in whole 16 KiB units, and for some extents a run up to
      // the end of their chunk or at the extent's logical address taken as physical (see the
      // README). So: every block it keeps that diskube drops must be free in btrfs-progs' own
      // dump, and nothing the two of them agree is used may be missing.
      const partclone = await partcloneView(path, result.blockSize, result.blockCount);
      const dropped = partclone.clone().andNot(result.used);
      const missing = dropped.clone().and(progs).count();
      const extra = result.used.clone().andNot(partclone);
      const explained = partcloneExplained(path, partclone, result.blockSize);
      const unexplained = extra.clone();
      for (const e of explained) unexplained.andNot(e.blocks);
      console.log(
        `btrfs ${name}: diskube keeps ${result.used.count()} blocks, partclone ${partclone.count()}; partclone-kept blocks diskube drops: ${dropped.count()} (all free per btrfs-progs; used among them: ${missing}); diskube extras: ${extra.count()} (first MiB ${explained[0]!.blocks.clone().and(extra).count()}, DUP second copies ${explained[1]!.blocks.clone().and(extra).count()}, other ${unexplained.count()})`,
      );
      expect(missing).toBe(0);
      expect(unexplained.count()).toBe(0);
    });
  }

  // The decisive test of "never under-report": garbage over everything diskube drops, then
  // btrfs check and btrfs restore must find every file of the manifest intact.
  it.each(Object.entries(MATRIX))(
    '%s: every dropped block overwritten, still checks clean and reads back',
    async (_name, spec) => {
      const { image, manifest } = await buildImage(spec);
      const bytes = readImage(image);
      const result = await btrfsDriver.usedBlocks(memorySource(bytes));
      for (const [first, count] of result.used.clone().not().toRanges()) {
        bytes.fill(0xa5, first * result.blockSize, (first + count) * result.blockSize);
      }
      const dir = await scratchDir();
      try {
        const part = join(dir, 'scrubbed.img');
        writeFileSync(part, bytes);
        await fsck('btrfs', part);
        const files = manifest.partitions[0]!.files;
        const found = await extractedFiles(
          'btrfs',
          part,
          files.map((f) => f.path),
          dir,
        );
        expect(new Map([...found].sort())).toEqual(
          new Map(files.map((f) => [f.path, f.sha256] as const).sort()),
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it('the matrix holds what it names: subvolumes, compressed and inline extents', async () => {
    // Counted by btrfs-progs, so a builder that silently dropped compress= or subvol= fails here.
    const [, , , , zstd, lzo] = Object.values(MATRIX);
    const z = progsContent(await buildBtrfs(zstd!));
    expect(z.subvolumes).toBe(4);
    expect(z.compressed).toBeGreaterThan(10);
    expect(z.inline).toBeGreaterThan(100);
    const l = progsContent(await buildBtrfs(lzo!));
    expect(l.subvolumes).toBe(2);
    expect(l.compressed).toBeGreaterThan(10);
    for (const [spec, features] of [
      [zstd!, ['compressZstd', 'defaultSubvol']],
      [lzo!, ['compressLzo']],
    ] as const) {
      const { facts } = await btrfsDriver.usedBlocks(
        memorySource(readImage(await buildBtrfs(spec))),
      );
      expect(facts.features).toEqual(expect.arrayContaining([...features]));
    }
  });

  it('btrfs-convert from ext4: data extents shared by two subvolumes, as reflinks share them', async () => {
    // btrfs-convert keeps the ext4 image as the file ext2_saved/image in subvolume 256, whose
    // extents are the converted files' own: data extents with several references. Every block
    // diskube drops is overwritten; then btrfs check, the files, and a rollback to ext4 (which
    // reads the shared extents back through the image file) must all be intact.
    const { image, manifest } = await buildImage(CONVERTED_EXT4);
    const dir = await scratchDir();
    try {
      const path = join(dir, 'converted.img');
      copyFileSync(image, path);
      execFileSync('btrfs-convert', ['--no-progress', path], { stdio: 'ignore' });
      expect(progsContent(path).sharedExtents).toBeGreaterThan(0);
      const bytes = readImage(path);
      const result = await btrfsDriver.usedBlocks(memorySource(bytes));
      const progs = progsView(path, result.blockSize, result.blockCount);
      expect(bitmapDifferences(result.used, progs)).toEqual({ missing: [], extra: [] });

      for (const [first, count] of result.used.clone().not().toRanges()) {
        bytes.fill(0xa5, first * result.blockSize, (first + count) * result.blockSize);
      }
      writeFileSync(path, bytes);
      await fsck('btrfs', path);
      const files = manifest.partitions[0]!.files;
      const want = new Map(files.map((f) => [f.path, f.sha256] as const).sort());
      const found = await extractedFiles('btrfs', path, [], dir);
      expect(found.has('/ext2_saved/image')).toBe(true);
      found.delete('/ext2_saved/image');
      expect(new Map([...found].sort())).toEqual(want);

      execFileSync('btrfs-convert', ['--rollback', path], { stdio: 'ignore' });
      await fsck('ext4', path);
      const back = await extractedFiles(
        'ext4',
        path,
        files.map((f) => f.path),
        dir,
      );
      expect(new Map([...back].sort())).toEqual(want);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('facts and probe', async () => {
    const image = readImage(await buildBtrfs(Object.values(MATRIX)[0]!));
    const source = memorySource(image);
    expect(await btrfsDriver.probe(source)).toEqual({
      filesystem: 'btrfs',
      blockSize: 4096,
      label: 'defaults',
    });
    const { facts } = await btrfsDriver.usedBlocks(source);
    expect(facts).toMatchObject({ label: 'defaults', sectorSize: 4096, nodeSize: 16384 });
    expect(facts.features).toContain('skinnyMetadata');
    expect(facts.profiles).toEqual(['data:single', 'metadata:dup', 'system:dup']);
  });
});
