import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { type FilesystemDriver, hasErrorCode, memorySource, readBytes } from '@diskube/core';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it, onTestFinished } from 'vitest';
import { blobSource, defaultDrivers, inspectImage, usedByteRanges } from './index.js';
import { backup, inspectImageFile, openImageFile, restore, verify } from './node.js';

const TOOLS = ['mke2fs', 'debugfs', 'mkntfs', 'sfdisk', 'gcc', 'qemu-img'];
const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
if (missing.length > 0) {
  const message = `missing system tools: ${missing.join(', ')} (run scripts/setup.sh)`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`\n*** diskube library tests SKIPPED: ${message} ***\n`);
}

const SPEC = `disk 96M gpt
  partition 40M ext4 label=root
    prefill random seed=51
    file /etc/hostname "vm-lib"
    file /var/big 6M random seed=52
    file /stale 6M random seed=53
    delete /stale
  partition 32M ntfs label=data
    prefill random seed=54
    file /docs/a.txt 1M text
  partition rest swap`;

/** A toy third-party filesystem: "TOYFS" at byte 0, 4 KiB blocks, blocks 0 and 1 used. */
const toyDriver: FilesystemDriver = {
  name: 'toyfs',
  async probe(source) {
    if (source.size < 8192) return null;
    const head = await readBytes(source, 0, 5);
    return new TextDecoder().decode(head) === 'TOYFS'
      ? { filesystem: 'toyfs', blockSize: 4096 }
      : null;
  },
  async usedBlocks(source) {
    const blockCount = Math.floor(source.size / 4096);
    return {
      filesystem: 'toyfs',
      blockSize: 4096,
      blockCount,
      used: Bitmap.fromRanges(blockCount, [[0, 2]]),
      tail: {
        offset: blockCount * 4096,
        length: source.size - blockCount * 4096,
        used: false,
        reason: 'none',
      },
      warnings: [],
      facts: { label: 'toy' },
    };
  },
};

describe('the driver registry', () => {
  it('takes a third-party driver without forking anything', async () => {
    const bytes = new Uint8Array(1 << 20).fill(0xaa);
    bytes.set(new TextEncoder().encode('TOYFS'));
    const alone = await inspectImage(memorySource(bytes));
    expect(alone.parts[0]!.kind).toBe('unknown');
    expect(alone.usedBytes).toBe(bytes.length);
    const withToy = await inspectImage(memorySource(bytes), {
      drivers: [...defaultDrivers, toyDriver],
    });
    expect(withToy.parts[0]).toMatchObject({ kind: 'filesystem', content: 'toyfs', label: 'toy' });
    expect(withToy.usedBytes).toBe(8192);
    expect(usedByteRanges(withToy.map)).toEqual([[0, 8192]]);
  });

  it('lists ext, ntfs, xfs, fat and btrfs and cannot be changed by accident', () => {
    expect(defaultDrivers.map((d) => d.name)).toEqual(['ext', 'ntfs', 'xfs', 'fat', 'btrfs']);
    expect(Object.isFrozen(defaultDrivers)).toBe(true);
  });
});

describe.runIf(missing.length === 0)('one call each, on a real GPT disk in a qcow2', () => {
  it('inspects a Blob exactly as a file: same layers, same used map', async () => {
    const { image } = await buildImage(SPEC);
    const fromFile = await inspectImageFile(image);
    const fromBlob = await inspectImage(blobSource(new Blob([await readFile(image)])));
    expect(fromBlob.used.equals(fromFile.used)).toBe(true);
    expect(fromBlob.usedBytes).toBe(fromFile.usedBytes);
    expect(fromFile.table).toEqual({ scheme: 'gpt', sectorSize: 512, partitions: 3 });
    expect(fromFile.parts.map((p) => [p.number, p.content, p.label])).toEqual([
      [1, 'ext4', 'root'],
      [2, 'ntfs', 'data'],
      [3, 'swap', null],
    ]);
    expect(fromFile.usedBytes).toBeLessThan(fromFile.size / 2);
  });

  it('backs up, backs up incrementally, verifies and restores a qcow2, with progress', async () => {
    const { image } = await buildImage(SPEC);
    const changed = await buildImage(
      SPEC.replace('    delete /stale', '    delete /stale\n    file /new 2M random seed=55'),
    );
    const dir = await mkdtemp(join(tmpdir(), 'diskube-lib-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const qcow2 = join(dir, 'vm.qcow2');
    const qcow2b = join(dir, 'vm2.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', image, qcow2]);
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', changed.image, qcow2b]);

    const seen: number[] = [];
    const snap = await backup({
      image: qcow2,
      out: join(dir, 'mon.dkb'),
      onProgress: (p) => seen.push(p.bytesDone),
    });
    expect(snap.kind).toBe('snapshot');
    // The filesystems' view, less what the qcow2 holds no data for (never read, never stored).
    const view = await inspectImageFile(qcow2);
    expect(snap.usedBytes).toBeLessThanOrEqual(view.usedBytes);
    expect(snap.usedBytes).toBeGreaterThan(view.usedBytes / 2);
    expect(seen.length).toBeGreaterThan(0);
    const inc = await backup({
      image: qcow2b,
      out: join(dir, 'tue.dkb'),
      base: join(dir, 'mon.dkb'),
    });
    expect(inc.kind).toBe('incremental');
    expect(inc.chain).toEqual([join(dir, 'mon.dkb')]);
    expect(inc.fileLength).toBeLessThan(snap.fileLength / 2);

    const checked = await verify(join(dir, 'tue.dkb'));
    expect(checked.ok).toBe(true);
    expect(checked.backups.map((b) => b.path)).toEqual([
      join(dir, 'tue.dkb'),
      join(dir, 'mon.dkb'),
    ]);

    const restored = await restore({ backup: join(dir, 'tue.dkb'), out: join(dir, 'out.qcow2') });
    expect(restored).toMatchObject({ format: 'qcow2', strategy: 'reverse' });
    // The restored qcow2 holds the used bytes of the changed disk, zeros elsewhere.
    const raw = join(dir, 'out.img');
    execFileSync('qemu-img', ['convert', '-O', 'raw', join(dir, 'out.qcow2'), raw]);
    const original = await readFile(changed.image);
    const back = await readFile(raw);
    const ranges = usedByteRanges((await inspectImageFile(qcow2b)).map);
    for (const [offset, length] of ranges) {
      expect(
        Buffer.compare(
          back.subarray(offset, offset + length),
          original.subarray(offset, offset + length),
        ),
      ).toBe(0);
    }
  });

  it('keeps the state digests aside: incrementals from the cache, from digest tables, or by reading the parent back store the same blocks', async () => {
    const { image } = await buildImage(SPEC);
    const changed = await buildImage(
      SPEC.replace('    delete /stale', '    delete /stale\n    file /new 2M random seed=55'),
    );
    const dir = await mkdtemp(join(tmpdir(), 'diskube-lib-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const cache = join(dir, 'cache');
    const at = (name: string) => join(dir, name);
    const snap = await backup({ image, out: at('mon.dkb'), cache });
    expect(snap.parentDigestsFrom).toBe(null);
    const withTable = await backup({
      image,
      out: at('mon-t.dkb'),
      cache: false,
      digestTable: true,
    });
    // The same snapshot but for its digest table: 16 bytes per stored block and the section's 20.
    expect(withTable.fileLength - snap.fileLength).toBe(16 * snap.storedBlocks + 20);
    const stateFile = join(cache, 'dkb-state', snap.backupId.slice(0, 2), snap.backupId);
    // The state's digests: one per used non-zero block, stored in the frames or as a repeat.
    expect(snap.repeatedBlocks).toBeGreaterThan(0);
    expect((await stat(stateFile)).size).toBe(64 + 16 * (snap.storedBlocks + snap.repeatedBlocks));
    // Format 2.1's layout (no repeats): every copy stored again, the same image restored.
    const noRepeats = await backup({ image, out: at('mon-nr.dkb'), cache: false, repeats: false });
    expect(noRepeats.repeatedBlocks).toBe(0);
    expect(noRepeats.storedBlocks).toBe(snap.storedBlocks + snap.repeatedBlocks);
    expect(noRepeats.fileLength).toBeGreaterThan(snap.fileLength);
    await restore({ backup: at('mon.dkb'), out: at('mon.img') });
    await restore({ backup: at('mon-nr.dkb'), out: at('mon-nr.img') });
    expect((await readFile(at('mon.img'))).equals(await readFile(at('mon-nr.img')))).toBe(true);

    const fromCache = await backup({
      image: changed.image,
      out: at('tue.dkb'),
      base: at('mon.dkb'),
      cache,
    });
    const fromFrames = await backup({
      image: changed.image,
      out: at('tue-f.dkb'),
      base: at('mon.dkb'),
      cache: false,
    });
    const fromTable = await backup({
      image: changed.image,
      out: at('tue-t.dkb'),
      base: at('mon-t.dkb'),
      cache: false,
    });
    expect([fromCache, fromFrames, fromTable].map((r) => r.parentDigestsFrom)).toEqual([
      'cache',
      'frames',
      'table',
    ]);
    expect(fromCache.parentBytesRead).toBe(0);
    expect(fromTable.parentBytesRead).toBe(0);
    expect(fromFrames.parentBytesRead).toBeGreaterThan(0);
    for (const r of [fromFrames, fromTable]) {
      expect(r.storedBlocks).toBe(fromCache.storedBlocks);
      expect(r.changedBlocks).toBe(fromCache.changedBlocks);
    }
    expect(fromCache.storedBlocks).toBeLessThan(snap.storedBlocks / 2);
    // The snapshot's copy stays (differentials start from it); the incremental has its own.
    await stat(stateFile);
    await stat(join(cache, 'dkb-state', fromCache.backupId.slice(0, 2), fromCache.backupId));
    for (const name of ['tue.dkb', 'tue-f.dkb', 'tue-t.dkb']) {
      const checked = await verify(at(name));
      expect(checked.ok).toBe(true);
      await restore({ backup: at(name), out: at(`${name}.img`) });
    }
    const a = await readFile(at('tue.dkb.img'));
    expect(a.equals(await readFile(at('tue-f.dkb.img')))).toBe(true);
    expect(a.equals(await readFile(at('tue-t.dkb.img')))).toBe(true);
  });

  it('stops on an AbortSignal and leaves no backup file behind', async () => {
    const { image } = await buildImage(SPEC);
    const dir = await mkdtemp(join(tmpdir(), 'diskube-lib-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const controller = new AbortController();
    const out = join(dir, 'aborted.dkb');
    const run = backup({
      image,
      out,
      cache: join(dir, 'cache'),
      threads: 0,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.bytesDone > 0) controller.abort();
      },
    });
    await expect(run).rejects.toThrow();
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    // Nor a state digest file, finished or not.
    const kept = await readdir(join(dir, 'cache'), { recursive: true }).catch(() => []);
    expect(
      kept.filter(
        (f) =>
          !f.endsWith('dkb-state') &&
          !/^dkb-state\/[0-9a-f]{2}$/.test(f) &&
          f !== 'dkb-state-swept',
      ),
    ).toEqual([]);
  });

  it('refuses a dirty filesystem unless asked for a full copy, the same bare or partitioned', async () => {
    const { image } = await buildImage(`disk 32M\n  filesystem ext4\n    file /a "x"\n    dirty`);
    const refusal = await inspectImageFile(image).catch((e: unknown) => e);
    expect(hasErrorCode(refusal, 'DIRTY')).toBe(true);
    const forced = await inspectImageFile(image, { fullCopyOnDoubt: true });
    expect(forced.usedBytes).toBe(forced.size);
    expect(forced.warnings.map((w) => w.code)).toContain('assumed-used');
  });

  it('closes what it opens', async () => {
    const { image } = await buildImage(SPEC);
    const opened = await openImageFile(image);
    expect(opened.container.format).toBe('raw');
    await opened.close();
    await expect(opened.disk.read(0, new Uint8Array(1))).rejects.toThrow();
  });
});
