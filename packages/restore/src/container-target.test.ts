import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContainer } from '@diskube/container';
import { hasErrorCode } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type ContainerTargetFormat, containerTarget } from './container-target.js';
import { restoreImage } from './restore.js';

/** A temporary directory removed when the test ends. */
async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'diskube-container-target-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

import { makeChain, prng } from './test-support.js';

/** True when qemu-img runs; under CI=true a missing qemu-img fails instead of skipping. */
function haveQemuImg(): boolean {
  const ok = spawnSync('qemu-img', ['--version'], { stdio: 'ignore' }).error === undefined;
  if (!ok && process.env.CI === 'true') throw new Error('qemu-img is required under CI=true');
  if (!ok)
    console.warn('\n!!! qemu-img is not installed: SKIPPING the container target tests !!!\n');
  return ok;
}
const have = haveQemuImg();

const MiB = 1024 * 1024;
const FORMATS: ContainerTargetFormat[] = ['qcow2', 'vdi'];

/** A disk with random data, text, partial clusters and long holes. */
function makeDisk(size: number, seed: number): Uint8Array {
  const rand = prng(seed);
  const disk = new Uint8Array(size);
  const fill = (offset: number, length: number) => {
    const end = Math.min(size, offset + length);
    for (let i = offset; i < end; i++) disk[i] = (rand() * 256) | 0;
  };
  fill(0, 1536); // boot sector area, then a hole
  fill(MiB - 100, 300); // crosses a VDI block and a qcow2 cluster boundary
  fill(3 * MiB + 4096, 2 * MiB + 17); // long run, unaligned end
  fill(9 * MiB + 65536 * 3 + 512, 512); // one sector inside a cluster
  const text = new TextEncoder().encode('compressible log line, repeated; ');
  for (let i = 6 * MiB + 777; i < 7 * MiB + 5000; i++) disk[i] = text[i % text.length]!;
  fill(size - 700, 700); // the last bytes (a partial sector when size % 512 != 0)
  for (let i = 20 * MiB; i < Math.min(size, 28 * MiB); i += 4096) fill(i, 512);
  return disk;
}

/** Writes `disk` in shuffled pieces of 4 KiB..1 MiB, zero pieces included, some written twice. */
async function writeShuffled(
  target: Awaited<ReturnType<typeof containerTarget>>,
  disk: Uint8Array,
  seed: number,
): Promise<Array<[number, number]>> {
  const rand = prng(seed);
  const pieces: Array<[number, number]> = [];
  for (let at = 0; at < disk.length; ) {
    const length = Math.min(disk.length - at, [4096, 65536, MiB, 512 * 3][(rand() * 4) | 0]!);
    pieces.push([at, length]);
    at += length;
  }
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
  }
  // First garbage over a few pieces (the patch strategy overwrites), then the real bytes, four
  // writes in flight as restoreImage keeps them.
  const garbage = pieces.filter(() => rand() < 0.1);
  for (const [at, length] of garbage) {
    await target.write(at, new Uint8Array(length).fill(0xa5));
  }
  const inflight = new Set<Promise<void>>();
  for (const [at, length] of pieces) {
    const p: Promise<void> = target.write(at, disk.subarray(at, at + length)).then(() => {
      inflight.delete(p);
    });
    inflight.add(p);
    if (inflight.size >= 4) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return garbage;
}

function qemuImg(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `qemu-img check` exits 0 and reports no leaks, corruptions or check errors. */
function expectCheckClean(path: string, format: ContainerTargetFormat): void {
  const r = qemuImg(['check', '-f', format, '--output=json', path]);
  expect(r.stderr).toBe('');
  expect(r.status, r.stdout).toBe(0);
  const report = JSON.parse(r.stdout) as Record<string, number>;
  expect(report['check-errors']).toBe(0);
  expect(report.leaks ?? 0).toBe(0);
  expect(report.corruptions ?? 0).toBe(0);
}

/** Units the container stores: qcow2 via qemu-img check, VDI from the block map. */
async function allocatedUnits(path: string, format: ContainerTargetFormat): Promise<number> {
  if (format === 'qcow2') {
    const r = qemuImg(['check', '--output=json', path]);
    return (JSON.parse(r.stdout) as { 'allocated-clusters': number })['allocated-clusters'];
  }
  const bytes = await readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const allocated = view.getUint32(0x184, true);
  const offData = view.getUint32(0x158, true);
  expect(bytes.length).toBe(offData + allocated * MiB);
  return allocated;
}

async function readBack(path: string): Promise<{ format: string; bytes: Uint8Array }> {
  const file = await openFileSource(path);
  try {
    const { format, disk } = await openContainer(file);
    const bytes = new Uint8Array(disk.size);
    await disk.read(0, bytes);
    return { format, bytes };
  } finally {
    await file.close();
  }
}

async function expectSameDisk(path: string, format: string, want: Uint8Array): Promise<void> {
  const back = await readBack(path);
  expect(back.format).toBe(format);
  expect(back.bytes.length).toBe(Math.ceil(want.length / 512) * 512);
  expect(Buffer.compare(back.bytes.subarray(0, want.length), want)).toBe(0);
  expect(back.bytes.subarray(want.length).every((b) => b === 0)).toBe(true);
}

describe.runIf(have)('containerTarget against qemu-img', () => {
  for (const size of [64 * MiB, 10 * MiB + 1536, 10 * MiB + 1000]) {
    for (const format of FORMATS) {
      it(`${format}, ${size} bytes: check clean, identical to the raw image for qemu-img and openContainer`, async () => {
        const dir = await scratchDir();
        const disk = makeDisk(size, size % 977);
        const raw = join(dir, 'disk.raw');
        await writeFile(raw, disk);
        const out = join(dir, `disk.${format}`);
        const target = await containerTarget(out, size, { format });
        const garbage = await writeShuffled(target, disk, 5);
        await target.finish();
        expect((await readdir(dir)).sort()).toEqual(['disk.raw', `disk.${format}`].sort());
        expectCheckClean(out, format);
        const cmp = qemuImg(['compare', '-f', 'raw', '-F', format, raw, out]);
        expect(cmp.stdout + cmp.stderr).toContain('Images are identical');
        expect(cmp.status).toBe(0);
        await expectSameDisk(out, format, disk);
        // Sparse: exactly the units that received non-zero bytes (data or garbage) are stored.
        const unit = format === 'qcow2' ? 65536 : MiB;
        const touched = new Set<number>();
        for (let u = 0; u * unit < size; u++) {
          if (disk.subarray(u * unit, (u + 1) * unit).some((b) => b !== 0)) touched.add(u);
        }
        for (const [at, length] of garbage) {
          for (let u = Math.floor(at / unit); u * unit < at + length; u++) touched.add(u);
        }
        expect(touched.size).toBeLessThan(size / unit);
        expect(await allocatedUnits(out, format)).toBe(touched.size);
      });
    }
  }

  it('qcow2 with 4 KiB clusters (several L2 tables) checks clean', async () => {
    const dir = await scratchDir();
    const size = 40 * MiB;
    const disk = makeDisk(size, 3);
    const out = join(dir, 'small-clusters.qcow2');
    const target = await containerTarget(out, size, { format: 'qcow2', clusterSize: 4096 });
    await writeShuffled(target, disk, 9);
    await target.finish();
    expectCheckClean(out, 'qcow2');
    await expectSameDisk(out, 'qcow2', disk);
  });

  for (const [size, clusterSize] of [
    [64 * MiB, 65536],
    [10 * MiB + 1000, 65536],
    [12 * MiB + 512, 4096],
  ] as const) {
    it(`qcow2 deflate, ${size} bytes, ${clusterSize}-byte clusters: check clean, identical, smaller`, async () => {
      const dir = await scratchDir();
      const disk = makeDisk(size, 21);
      const raw = join(dir, 'disk.raw');
      await writeFile(raw, disk);
      const files: Record<string, number> = {};
      for (const compress of [undefined, 'deflate'] as const) {
        const out = join(dir, `disk-${compress ?? 'plain'}.qcow2`);
        const target = await containerTarget(out, size, { format: 'qcow2', clusterSize, compress });
        await writeShuffled(target, disk, 13);
        await target.finish();
        expectCheckClean(out, 'qcow2');
        const cmp = qemuImg(['compare', '-f', 'raw', '-F', 'qcow2', raw, out]);
        expect(cmp.stdout + cmp.stderr).toContain('Images are identical');
        await expectSameDisk(out, 'qcow2', disk);
        files[compress ?? 'plain'] = (await stat(out)).size;
        if (compress === 'deflate') {
          // Garbage later overwritten with zeros is dropped: only non-zero clusters remain.
          let nonZero = 0;
          for (let at = 0; at < size; at += clusterSize)
            if (disk.subarray(at, at + clusterSize).some((b) => b !== 0)) nonZero++;
          expect(await allocatedUnits(out, 'qcow2')).toBe(nonZero);
        }
      }
      // The staging file is gone; the text region (and garbage runs) compressed.
      expect((await readdir(dir)).filter((f) => f.includes('.partial-'))).toEqual([]);
      expect(files.deflate!).toBeLessThan(files.plain! - 512 * 1024);
    });
  }

  it('a writer that detects nothing leaves a valid empty image', async () => {
    const dir = await scratchDir();
    for (const [format, compress] of [
      ['qcow2', undefined],
      ['vdi', undefined],
      ['qcow2', 'deflate'],
    ] as const) {
      const out = join(dir, `empty-${compress}.${format}`);
      const target = await containerTarget(out, 8 * MiB, { format, compress });
      await target.write(MiB, new Uint8Array(MiB)); // zeros only: nothing allocated
      await target.finish();
      expectCheckClean(out, format);
      await expectSameDisk(out, format, new Uint8Array(8 * MiB));
    }
  });
});

describe('containerTarget under restoreImage', async () => {
  const { states, readers } = await makeChain({
    seed: 77,
    blockSize: 4096,
    blockCount: 700,
    tail: 1000,
    steps: 3,
  });
  const want = states.at(-1)!.expected;

  for (const [format, compress] of [
    ['qcow2', undefined],
    ['vdi', undefined],
    ['qcow2', 'deflate'],
  ] as const) {
    for (const strategy of ['reverse', 'patch'] as const) {
      it(`${format}${compress ? ` ${compress}` : ''}, ${strategy}: the image reads back as the chain's last state`, async () => {
        const dir = await scratchDir();
        const out = join(dir, `r.${format}`);
        const target = await containerTarget(out, want.length, {
          format,
          clusterSize: 4096 * 4,
          compress,
        });
        await restoreImage({ chain: readers, target, strategy });
        await expectSameDisk(out, format, want);
        if (have) expectCheckClean(out, format);
      });
    }
  }

  it('a failed restore leaves no file behind', async () => {
    const dir = await scratchDir();
    const out = join(dir, 'r.qcow2');
    const target = await containerTarget(out, want.length, { format: 'qcow2' });
    const controller = new AbortController();
    controller.abort();
    await expect(
      restoreImage({ chain: readers, target, signal: controller.signal }),
    ).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses an existing file, a non-file and unknown formats', async () => {
    const dir = await scratchDir();
    const reason = async (p: Promise<unknown>) =>
      p.then(
        () => 'no error',
        (e: unknown) =>
          hasErrorCode(e, 'INVALID_ARGUMENT') ? (e as { reason: string }).reason : String(e),
      );
    await writeFile(join(dir, 'x.vdi'), 'x');
    expect(await reason(containerTarget(join(dir, 'x.vdi'), MiB, { format: 'vdi' }))).toBe(
      'exists',
    );
    expect(await reason(containerTarget(dir, MiB, { format: 'vdi', overwrite: true }))).toBe(
      'not-a-file',
    );
    expect(
      await reason(
        containerTarget(join(dir, 'y'), MiB, { format: 'vmdk' as ContainerTargetFormat }),
      ),
    ).toBe('format');
    expect(
      await reason(containerTarget(join(dir, 'y'), MiB, { format: 'qcow2', clusterSize: 3000 })),
    ).toBe('cluster-size');
    expect(
      await reason(containerTarget(join(dir, 'y'), MiB, { format: 'vdi', compress: 'deflate' })),
    ).toBe('compress');
    expect(await readdir(dir)).toEqual(['x.vdi']);
  });
});
