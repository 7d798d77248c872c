import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasErrorCode } from '@diskube/core';
import { buildImage } from '@diskube/mkimage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup, restore } from './node.js';

// Changed-block tracking from a qcow2 persistent dirty bitmap that QEMU itself keeps: the bitmap
// is created with qemu-img and the writes go through qemu-io, which records them in it.
const TOOLS = ['mke2fs', 'debugfs', 'sfdisk', 'qemu-img', 'qemu-io'];
const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
if (missing.length > 0) {
  const message = `missing system tools: ${missing.join(', ')} (run scripts/setup.sh)`;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`\n*** dirty-bitmap tests SKIPPED: ${message} ***\n`);
}

// The raw partition has no filesystem, so it is kept whole: every byte a write lands on is used.
const SPEC = `disk 64M gpt
  partition 24M ext4 label=root
    file /etc/hostname "vm-cbt"
    file /var/big 4M random seed=71
  partition 24M raw
    prefill random seed=72`;

const KiB = 1024;
const MiB = 1024 * KiB;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Writes `length` bytes of `pattern` at `offset` of the qcow2 file through QEMU's block layer. */
function qemuWrite(file: string, offset: number, length: number, pattern: number): void {
  sh('qemu-io', ['-c', `write -P ${pattern} ${offset} ${length}`, file]);
}

describe.runIf(missing.length === 0)('backup --dirty-bitmap (qcow2 persistent bitmaps)', () => {
  let dir = '';
  let rawStart = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'diskube-cbt-'));
    const { image, manifest } = await buildImage(SPEC);
    rawStart = manifest.partitions[1]!.offset;
    const qcow = join(dir, 'vm.qcow2');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', image, qcow]);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A fresh copy of the pristine qcow2 (tests change theirs). */
  function copy(name: string): string {
    const file = join(dir, `${name}.qcow2`);
    sh('cp', [join(dir, 'vm.qcow2'), file]);
    return file;
  }

  async function restoredEqualsImage(backupPath: string, qcow: string): Promise<void> {
    const out = join(dir, `${Math.random().toString(36).slice(2)}.img`);
    await restore({ backup: backupPath, out });
    const flat = `${out}.expected`;
    sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcow, flat]);
    // Only the used bytes must match; the written ranges lie in the raw partition, which is
    // kept whole, and the ext4 partition is unchanged, so the images must be equal there.
    const [a, b] = await Promise.all([readFile(out), readFile(flat)]);
    expect(a.subarray(rawStart).equals(b.subarray(rawStart))).toBe(true);
  }

  it('an incremental reads only what the bitmap marks dirty, and restores like the digest path', async () => {
    const qcow = copy('tracked');
    sh('qemu-img', ['bitmap', '--add', '--enable', '--granularity', '65536', qcow, 'cbt']);
    const base = join(dir, 'base.dkb');
    const full = await backup({ image: qcow, out: base, dirtyBitmap: 'cbt' });
    expect(full.kind).toBe('snapshot');

    qemuWrite(qcow, rawStart + 1 * MiB, 256 * KiB, 0x5a);
    qemuWrite(qcow, rawStart + 9 * MiB, 64 * KiB, 0xa5);

    const viaBitmap = await backup({
      image: qcow,
      out: join(dir, 'inc-bitmap.dkb'),
      base,
      dirtyBitmap: 'cbt',
    });
    const viaDigests = await backup({ image: qcow, out: join(dir, 'inc-digest.dkb'), base });
    expect(viaBitmap.warnings.map((w) => w.code)).not.toContain('dirty-bitmap-untrusted');
    // 320 KiB written: the bitmap path reads those granules and nothing else of the disk.
    expect(viaBitmap.bytesRead).toBeLessThanOrEqual(320 * KiB);
    expect(viaBitmap.bytesRead).toBeGreaterThanOrEqual(320 * KiB);
    expect(viaDigests.bytesRead).toBeGreaterThan(24 * MiB);
    expect(viaBitmap.changedBlocks).toBe(viaDigests.changedBlocks);
    console.log(
      `dirty bitmap: read ${viaBitmap.bytesRead} bytes; digests: read ${viaDigests.bytesRead} bytes of ${full.usedBytes} used; ${viaBitmap.changedBlocks} blocks changed`,
    );
    await restoredEqualsImage(join(dir, 'inc-bitmap.dkb'), qcow);
    await restoredEqualsImage(join(dir, 'inc-digest.dkb'), qcow);
  });

  it('a base made without the bitmap: not trusted, every used block compared by digest', async () => {
    const qcow = copy('untied');
    const base = join(dir, 'untied-base.dkb');
    await backup({ image: qcow, out: base });
    // The bitmap is created after the base: writes before it are not in it.
    qemuWrite(qcow, rawStart + 2 * MiB, 128 * KiB, 0x11);
    sh('qemu-img', ['bitmap', '--add', '--enable', qcow, 'late']);
    qemuWrite(qcow, rawStart + 5 * MiB, 64 * KiB, 0x22);
    const inc = join(dir, 'untied-inc.dkb');
    const warnings: string[] = [];
    const result = await backup({
      image: qcow,
      out: inc,
      base,
      dirtyBitmap: 'late',
      onWarning: (w) => warnings.push(w.code),
    });
    expect(warnings).toContain('dirty-bitmap-untrusted');
    expect(result.bytesRead).toBeGreaterThan(24 * MiB);
    // Both writes are in the incremental, including the one the bitmap never saw.
    await restoredEqualsImage(inc, qcow);
  });

  it('a bitmap cleared since the base (fewer dirty granules), or re-created with another granularity, is not trusted', async () => {
    const qcow = copy('cleared');
    sh('qemu-img', ['bitmap', '--add', '--enable', '--granularity', '65536', qcow, 'cbt']);
    qemuWrite(qcow, rawStart, 1 * MiB, 0x33); // 16 granules dirty when the base is made
    const base = join(dir, 'cleared-base.dkb');
    await backup({ image: qcow, out: base, dirtyBitmap: 'cbt' });
    qemuWrite(qcow, rawStart + 3 * MiB, 512 * KiB, 0x44);
    sh('qemu-img', ['bitmap', '--clear', qcow, 'cbt']);
    qemuWrite(qcow, rawStart + 7 * MiB, 64 * KiB, 0x55);
    const cleared = await backup({
      image: qcow,
      out: join(dir, 'cleared-inc.dkb'),
      base,
      dirtyBitmap: 'cbt',
    });
    expect(cleared.warnings.find((w) => w.code === 'dirty-bitmap-untrusted')?.message).toMatch(
      /fewer/,
    );
    await restoredEqualsImage(join(dir, 'cleared-inc.dkb'), qcow);

    sh('qemu-img', ['bitmap', '--remove', qcow, 'cbt']);
    sh('qemu-img', ['bitmap', '--add', '--enable', '--granularity', '131072', qcow, 'cbt']);
    const regranulated = await backup({
      image: qcow,
      out: join(dir, 'regranulated-inc.dkb'),
      base,
      dirtyBitmap: 'cbt',
    });
    expect(regranulated.warnings.find((w) => w.code === 'dirty-bitmap-untrusted')?.message).toMatch(
      /granularity/,
    );
  });

  it('a missing bitmap, or one QEMU left in use, is refused', async () => {
    const qcow = copy('refused');
    const base = join(dir, 'refused-base.dkb');
    await backup({ image: qcow, out: base });
    const noBitmap = await backup({
      image: qcow,
      out: join(dir, 'x.dkb'),
      base,
      dirtyBitmap: 'nope',
    }).catch((e: unknown) => e);
    expect(hasErrorCode(noBitmap, 'INVALID_ARGUMENT')).toBe(true);
    // A bitmap in use: set the in_use flag the way a QEMU that died while running leaves it.
    sh('qemu-img', ['bitmap', '--add', '--enable', qcow, 'cbt']);
    // qemu-io opens the image read-write (marking the bitmap in use) and is then killed.
    spawnSync('qemu-io', ['-c', 'sigraise 9', qcow]);
    expect(sh('qemu-img', ['info', '-U', qcow])).toMatch(/in-use/);
    const inUse = await backup({
      image: qcow,
      out: join(dir, 'y.dkb'),
      base,
      dirtyBitmap: 'cbt',
    }).catch((e: unknown) => e);
    expect(hasErrorCode(inUse, 'DIRTY')).toBe(true);
    expect((inUse as { reason?: string }).reason).toBe('bitmap-untrusted');
  });
});
