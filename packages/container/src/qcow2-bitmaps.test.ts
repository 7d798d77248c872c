import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskubeError, memorySource } from '@diskube/core';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, haveQemuImg } from './images.test-support.js';
import { readQcow2Bitmaps } from './index.js';

// Persistent dirty bitmaps (issue 14, read-only): made with `qemu-img bitmap --add --enable`,
// dirtied by `qemu-io` writes, read back; an in-use bitmap and one from an image whose bitmaps
// extension was invalidated (autoclear bit 0 clear) are never trusted.

const hasQemu = haveQemuImg();
const work = mkdtempSync(join(tmpdir(), 'diskube-bitmaps-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const run = (tool: string, ...args: string[]) =>
  execFileSync(tool, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: work });
const KiB = 1024;
const MiB = 1024 * KiB;

async function ranges(bytes: Uint8Array, name: string) {
  const bitmap = (await readQcow2Bitmaps(memorySource(bytes))).find((b) => b.name === name)!;
  const out: Array<[number, number]> = [];
  for await (const r of bitmap.dirtyRanges()) out.push(r);
  return out;
}

describe.runIf(hasQemu)('qcow2 persistent dirty bitmaps', () => {
  it('marks exactly the granules written after the bitmap was added', async () => {
    run('qemu-img', 'create', '-f', 'qcow2', 'vm.qcow2', '64M');
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x11 0 4M', 'vm.qcow2'); // before: not in it
    run('qemu-img', 'bitmap', '--add', '--enable', 'vm.qcow2', 'b0');
    run('qemu-img', 'bitmap', '--add', '--enable', '-g', '1M', 'vm.qcow2', 'coarse');
    run(
      'qemu-io',
      '-f',
      'qcow2',
      '-c',
      'write -P 0x22 8M 128k',
      '-c',
      `write -P 0x23 ${20 * MiB + 100 * KiB} 4k`,
      '-c',
      `write -P 0x24 ${64 * MiB - 512} 512`,
      'vm.qcow2',
    );
    const bytes = new Uint8Array(readFileSync(join(work, 'vm.qcow2')));
    const bitmaps = await readQcow2Bitmaps(memorySource(bytes));
    expect(bitmaps.map((b) => [b.name, b.granularity, b.untrusted])).toEqual([
      ['b0', 64 * KiB, undefined],
      ['coarse', MiB, undefined],
    ]);
    expect(await ranges(bytes, 'b0')).toEqual([
      [8 * MiB, 128 * KiB],
      [20 * MiB + 64 * KiB, 64 * KiB],
      [64 * MiB - 64 * KiB, 64 * KiB],
    ]);
    expect(await ranges(bytes, 'coarse')).toEqual([
      [8 * MiB, MiB],
      [20 * MiB, MiB],
      [63 * MiB, MiB],
    ]);
  });

  it('never trusts a bitmap in use, or one whose extension a writer invalidated', async () => {
    const bytes = new Uint8Array(readFileSync(join(work, 'vm.qcow2')));
    const v = new DataView(bytes.buffer);
    const untrusted = async (b: Uint8Array) => {
      try {
        await ranges(b, 'b0');
        return 'trusted';
      } catch (error) {
        if (!DiskubeError.isInstance(error)) throw error;
        return `${error.code}/${error.reason}`;
      }
    };
    // Autoclear bit 0 cleared (what an old QEMU does when it writes the image).
    const cleared = bytes.slice();
    new DataView(cleared.buffer).setBigUint64(0x58, v.getBigUint64(0x58) & ~1n);
    expect(await untrusted(cleared)).toBe('DIRTY/bitmap-untrusted');
    // in_use set in the directory entry of b0 (the first).
    const inUse = bytes.slice();
    const ext = (() => {
      for (let at = v.getUint32(0x64); ; ) {
        const type = v.getUint32(at);
        if (type === 0x23852875) return at + 8;
        at += 8 + Math.ceil(v.getUint32(at + 4) / 8) * 8;
      }
    })();
    const dir = Number(v.getBigUint64(ext + 0x10));
    new DataView(inUse.buffer).setUint32(dir + 0x0c, v.getUint32(dir + 0x0c) | 1);
    expect(await untrusted(inUse)).toBe('DIRTY/bitmap-untrusted');
    expect((await readQcow2Bitmaps(memorySource(inUse)))[0]!.inUse).toBe(true);
    // A bitmap table outside the file is CORRUPT.
    const outside = bytes.slice();
    new DataView(outside.buffer).setBigUint64(dir, 1n << 40n);
    await expect(readQcow2Bitmaps(memorySource(outside))).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'out-of-range',
    });
    expect(await untrusted(bytes)).toBe('trusted');
  });
});
