import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { hasErrorCode, memorySource } from '@diskube/core';
import { afterAll, describe, expect, it } from 'vitest';
import { haveQemuImg, random } from './images.test-support.js';
import {
  createDiskWriter,
  type DiskWriter,
  type DiskWriterFormat,
  type DiskWriterOptions,
  openContainer,
  type StagingSink,
} from './index.js';

// createDiskWriter through its public API: images written in shuffled, overlapping, concurrent
// pieces into an in-memory sink read back identical through openContainer and, where qemu-img
// runs, `qemu-img check` finds nothing and `qemu-img compare` calls them identical to the raw
// disk. (The encoders' field-level tests are in qcow2-writer.test.ts and vdi-writer.test.ts.)

const hasQemu = haveQemuImg();
const work = mkdtempSync(join(tmpdir(), 'diskube-disk-writer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const MiB = 2 ** 20;

/** A growable in-memory file. */
function memorySink(): StagingSink & { bytes(): Uint8Array; writes: number } {
  let buffer = new Uint8Array(MiB);
  let length = 0;
  const ensure = (n: number) => {
    if (n <= buffer.length) return;
    const next = new Uint8Array(Math.max(n, buffer.length * 2));
    next.set(buffer.subarray(0, length));
    buffer = next;
  };
  return {
    writes: 0,
    async write(offset, bytes) {
      this.writes++;
      ensure(offset + bytes.length);
      buffer.set(bytes, offset);
      length = Math.max(length, offset + bytes.length);
    },
    async read(offset, dst) {
      dst.fill(0);
      if (offset < length) dst.set(buffer.subarray(offset, Math.min(length, offset + dst.length)));
    },
    async truncate(n) {
      ensure(n);
      if (n < length) buffer.fill(0, n, length);
      length = n;
    },
    bytes: () => buffer.slice(0, length),
  };
}

/** Random data, compressible text, a hole-riddled middle and a partial last sector. */
function makeDisk(size: number, seed: number): Uint8Array {
  const disk = new Uint8Array(size);
  disk.set(random(70000, seed), 100);
  disk.set(random(5000, seed + 1), MiB - 2500); // crosses a VDI block boundary
  for (let i = 2 * MiB + 7; i < 2 * MiB + 300000; i++) disk[i] = (i >> 4) & 0xff;
  disk.set(random(700, seed + 2), size - 700);
  return disk;
}

/** `disk` in shuffled pieces, garbage first over some (overwritten later), 4 writes in flight. */
async function writeShuffled(writer: DiskWriter, disk: Uint8Array, seed: number): Promise<void> {
  const r = random(4096, seed);
  let k = 0;
  const next = () => r[k++ % r.length]!;
  const pieces: Array<[number, number]> = [];
  for (let at = 0; at < disk.length; ) {
    const length = Math.min(disk.length - at, [4096, 65536, MiB, 1536][next() % 4]!);
    pieces.push([at, length]);
    at += length;
  }
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
  }
  for (const [at, length] of pieces.filter(() => next() < 25)) {
    await writer.write(at, new Uint8Array(length).fill(0xa5));
  }
  const inflight = new Set<Promise<void>>();
  for (const [at, length] of pieces) {
    const p: Promise<void> = writer.write(at, disk.subarray(at, at + length)).then(() => {
      inflight.delete(p);
    });
    inflight.add(p);
    if (inflight.size >= 4) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

function qemuImg(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

async function written(
  format: DiskWriterFormat,
  disk: Uint8Array,
  options: Omit<DiskWriterOptions, 'staging'> = {},
): Promise<Uint8Array> {
  const sink = memorySink();
  const staging = options.compress ? memorySink() : undefined;
  const writer = createDiskWriter(format, sink, disk.length, { ...options, staging });
  expect(writer.virtualSize).toBe(Math.ceil(disk.length / 512) * 512);
  await writeShuffled(writer, disk, disk.length % 251);
  const { fileLength } = await writer.finish();
  const image = sink.bytes();
  expect(image.length).toBe(fileLength);
  return image;
}

async function expectReadsBack(image: Uint8Array, format: string, disk: Uint8Array) {
  const opened = await openContainer(memorySource(image));
  expect(opened.format).toBe(format);
  expect(opened.disk.size).toBe(Math.ceil(disk.length / 512) * 512);
  const back = new Uint8Array(opened.disk.size);
  await opened.disk.read(0, back);
  expect(Buffer.compare(back.subarray(0, disk.length), disk)).toBe(0);
  expect(back.subarray(disk.length).every((b) => b === 0)).toBe(true);
  let unallocated = 0;
  for await (const [, length] of opened.disk.unallocatedRanges()) unallocated += length;
  return unallocated;
}

function expectQemuClean(
  image: Uint8Array,
  format: DiskWriterFormat,
  disk: Uint8Array,
  name: string,
) {
  const path = join(work, name);
  const raw = join(work, `${name}.raw`);
  writeFileSync(path, image);
  writeFileSync(raw, disk);
  const check = qemuImg(['check', '-f', format, '--output=json', path]);
  expect(check.status, check.out).toBe(0);
  const report = JSON.parse(check.out) as Record<string, number>;
  expect(report['check-errors'] ?? 0).toBe(0);
  expect(report.leaks ?? 0).toBe(0);
  expect(report.corruptions ?? 0).toBe(0);
  const cmp = qemuImg(['compare', '-f', 'raw', '-F', format, raw, path]);
  expect(cmp.out).toContain('Images are identical');
  expect(cmp.status).toBe(0);
}

const CASES: Array<[string, DiskWriterFormat, number, Omit<DiskWriterOptions, 'staging'>]> = [
  ['qcow2, 64 KiB clusters, sector-multiple size', 'qcow2', 3 * MiB + 1536, {}],
  [
    'qcow2, 4 KiB clusters (several L2 tables), odd size',
    'qcow2',
    5 * MiB + 1000,
    { clusterSize: 4096 },
  ],
  ['qcow2, deflate (fflate)', 'qcow2', 4 * MiB + 1536, { compress: 'deflate' }],
  [
    'qcow2, deflate (zlib), 4 KiB clusters, odd size',
    'qcow2',
    4 * MiB + 1000,
    { compress: 'deflate', clusterSize: 4096, deflateRaw: (c) => deflateRawSync(c) },
  ],
  ['VDI, odd size', 'vdi', 4 * MiB + 1000, {}],
];

describe('createDiskWriter', () => {
  it.each(CASES)(
    '%s: reads back identical through openContainer',
    async (_, format, size, options) => {
      const disk = makeDisk(size, 3);
      const image = await written(format, disk, options);
      expect(await expectReadsBack(image, format, disk)).toBeGreaterThan(0);
      if (options.compress) expect(image.length).toBeLessThan(size);
    },
  );

  it.runIf(hasQemu).each(CASES)(
    '%s: qemu-img check clean, qemu-img compare identical',
    async (name, format, size, options) => {
      const disk = makeDisk(size, 5);
      const image = await written(format, disk, options);
      expectQemuClean(image, format, disk, `${name.replace(/\W+/g, '-')}.${format}`);
    },
  );

  it.runIf(hasQemu).each<[DiskWriterFormat, Omit<DiskWriterOptions, 'staging'>]>([
    ['qcow2', {}],
    ['vdi', {}],
    ['qcow2', { compress: 'deflate' }],
  ])('an image given only zeros is valid and empty (%s %j)', async (format, options) => {
    const disk = new Uint8Array(8 * MiB);
    const sink = memorySink();
    const staging = options.compress ? memorySink() : undefined;
    const writer = createDiskWriter(format, sink, disk.length, { ...options, staging });
    await writer.write(MiB, disk.subarray(0, 3 * MiB)); // zeros only: nothing is allocated
    await writer.finish();
    const image = sink.bytes();
    expect(await expectReadsBack(image, format, disk)).toBe(8 * MiB);
    expectQemuClean(image, format, disk, `empty-${format}-${options.compress ?? 'plain'}`);
  });

  it('refuses bad formats, options, late and out-of-range writes (INVALID_ARGUMENT)', async () => {
    const reason = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        return hasErrorCode(e, 'INVALID_ARGUMENT') ? (e as { reason: string }).reason : String(e);
      }
      return 'no error';
    };
    const sink = memorySink();
    expect(await reason(() => createDiskWriter('vmdk' as DiskWriterFormat, sink, MiB))).toBe(
      'format',
    );
    expect(await reason(() => createDiskWriter('qcow2', sink, MiB, { clusterSize: 3000 }))).toBe(
      'cluster-size',
    );
    expect(await reason(() => createDiskWriter('qcow2', sink, MiB, { clusterSize: 256 }))).toBe(
      'cluster-size',
    );
    expect(await reason(() => createDiskWriter('qcow2', sink, -1))).toBe('size');
    expect(await reason(() => createDiskWriter('vdi', sink, MiB, { compress: 'deflate' }))).toBe(
      'compress',
    );
    expect(await reason(() => createDiskWriter('qcow2', sink, MiB, { compress: 'deflate' }))).toBe(
      'compress',
    );
    const writer = createDiskWriter('vdi', sink, MiB);
    expect(await reason(() => writer.write(MiB - 10, new Uint8Array(11)))).not.toBe('no error');
    await writer.finish();
    expect(await reason(() => writer.write(0, new Uint8Array(1)))).toBe('state');
    expect(await reason(() => writer.finish())).toBe('state');
    const aborted = createDiskWriter('qcow2', memorySink(), MiB);
    aborted.abort();
    expect(await reason(() => aborted.write(0, new Uint8Array(1)))).toBe('state');
    expect(sink.writes).toBe(2); // the VDI block map and header only: no data was written
  });
});
