import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

function qemu(tool: 'qemu-img' | 'qemu-io', args: string[]) {
  const r = spawnSync(tool, args, { encoding: 'utf8', cwd: work });
  return { status: r.status, out: r.stdout + r.stderr, stdout: r.stdout };
}
const qemuImg = (args: string[]) => qemu('qemu-img', args);

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

/** `qemu-img check` finds nothing in `name` (in `work`); `qemu-img compare` says it reads as `disk`. */
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

/** The INVALID_ARGUMENT reason `f` throws (or rejects with), else what happened. */
async function reason(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    return hasErrorCode(e, 'INVALID_ARGUMENT') ? (e as { reason: string }).reason : String(e);
  }
  return 'no error';
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

describe('createDiskWriter with backing (qcow2 overlay)', () => {
  const K = 1024;
  const size = 8 * MiB;
  /** The base: qemu-io patterns in a 64 KiB-cluster qcow2, holes elsewhere. */
  const PATTERNS: Array<[number, number, number]> = [
    [0x11, 0, MiB],
    [0x22, 2 * MiB, MiB],
    [0x33, 5 * MiB, 2 * MiB],
  ];
  const baseBytes = new Uint8Array(size);
  for (const [value, at, length] of PATTERNS) baseBytes.fill(value, at, at + length);
  const ZEROS_OVER_DATA: Array<[number, number]> = [
    [512 * K, 256 * K], // over 0x11
    [2 * MiB, 192 * K], // over 0x22
  ];
  const ZEROS_OVER_HOLE: [number, number] = [4 * MiB, 64 * K];
  const NEW_DATA: Array<[number, number]> = [
    [0, 256 * K], // over 0x11
    [3 * MiB, 128 * K], // over a hole
  ];
  /** Zeros first, then a non-zero 4 KiB inside: allocated, the rest of it zeros (masks 0x33). */
  const ZERO_THEN_DATA = 6 * MiB;
  /** Data first, then zeros over it all (masks 0x33). */
  const DATA_THEN_ZERO = 6 * MiB + 64 * K;
  const UNTOUCHED = [256 * K, 768 * K, MiB + 5, 2 * MiB + 192 * K, 5 * MiB, 7 * MiB + 1];

  let made = false;
  function makeBase() {
    if (made) return;
    made = true;
    expect(qemuImg(['create', '-f', 'qcow2', 'base.qcow2', String(size)]).status).toBe(0);
    const writes = PATTERNS.flatMap(([v, at, l]) => [
      '-c',
      `write -P 0x${v.toString(16)} ${at} ${l}`,
    ]);
    const io = qemu('qemu-io', ['-f', 'qcow2', ...writes, 'base.qcow2']);
    expect(io.status, io.out).toBe(0);
  }

  /** Write the overlay through the writer; return it and the bytes it must read as. */
  async function overlay(options: Omit<DiskWriterOptions, 'staging' | 'backing'>) {
    const expected = baseBytes.slice();
    const sink = memorySink();
    const staging = options.compress ? memorySink() : undefined;
    const writer = createDiskWriter('qcow2', sink, size, {
      ...options,
      staging,
      backing: { file: 'base.qcow2', format: 'qcow2' },
    });
    const put = async (at: number, bytes: Uint8Array) => {
      await writer.write(at, bytes);
      expected.set(bytes, at);
    };
    for (const [i, [at, length]] of NEW_DATA.entries()) await put(at, random(length, 40 + i));
    for (const [at, length] of [...ZEROS_OVER_DATA, ZEROS_OVER_HOLE]) {
      await put(at, new Uint8Array(length));
    }
    await put(ZERO_THEN_DATA, new Uint8Array(64 * K));
    await put(ZERO_THEN_DATA + 4 * K, random(4 * K, 50));
    await put(DATA_THEN_ZERO, random(64 * K, 51));
    await put(DATA_THEN_ZERO, new Uint8Array(64 * K));
    await writer.finish();
    return { image: sink.bytes(), expected };
  }

  const OVERLAYS: Array<[string, Omit<DiskWriterOptions, 'staging' | 'backing'>]> = [
    ['64 KiB clusters', {}],
    ['4 KiB clusters', { clusterSize: 4096 }],
    ['deflate', { compress: 'deflate' }],
  ];

  it.each(OVERLAYS)(
    '%s: reads back through openContainer with resolveParent',
    async (_, options) => {
      const base = await written('qcow2', baseBytes); // our own writer's base: no qemu needed
      const { image, expected } = await overlay(options);
      const asked: string[] = [];
      const opened = await openContainer(memorySource(image), {
        resolveParent: async (hint) => {
          asked.push(hint);
          return memorySource(base);
        },
      });
      expect(asked).toEqual(['base.qcow2']);
      expect(opened.info.chain.map((l) => l.format)).toEqual(['qcow2', 'qcow2']);
      const back = new Uint8Array(size);
      await opened.disk.read(0, back);
      expect(back.findIndex((b, i) => b !== expected[i])).toBe(-1);
    },
  );

  it.runIf(hasQemu).each(OVERLAYS)(
    '%s: over a qemu-img base, qemu-img check, info, compare and map agree',
    async (name, options) => {
      makeBase();
      const { image, expected } = await overlay(options);
      const file = `overlay-${name.replace(/\W+/g, '-')}.qcow2`;
      expectQemuClean(image, 'qcow2', expected, file);
      const info = JSON.parse(qemuImg(['info', '--output=json', join(work, file)]).stdout);
      expect(info['backing-filename']).toBe('base.qcow2');
      expect(info['backing-filename-format']).toBe('qcow2');
      expect(info['full-backing-filename']).toBe(join(work, 'base.qcow2'));
      // Our reader over qemu's base, too.
      const opened = await openContainer(memorySource(image), {
        resolveParent: async (hint) => memorySource(new Uint8Array(readFileSync(join(work, hint)))),
      });
      const back = new Uint8Array(size);
      await opened.disk.read(0, back);
      expect(back.findIndex((b, i) => b !== expected[i])).toBe(-1);

      type MapEntry = {
        start: number;
        length: number;
        depth: number;
        zero: boolean;
        data: boolean;
      };
      const map = JSON.parse(qemuImg(['map', '--output=json', file]).stdout) as MapEntry[];
      const at = (offset: number) => {
        const e = map.find((m) => m.start <= offset && offset < m.start + m.length);
        return e && { depth: e.depth, zero: e.zero, data: e.data };
      };
      for (const [start, length] of [...ZEROS_OVER_DATA, ZEROS_OVER_HOLE]) {
        for (const offset of [start, start + length - 1]) {
          expect(at(offset), `zero cluster at ${offset}`).toEqual({
            depth: 0,
            zero: true,
            data: false,
          });
        }
      }
      for (const [start, length] of NEW_DATA) {
        expect(at(start)).toMatchObject({ depth: 0, data: true });
        expect(at(start + length - 1)).toMatchObject({ depth: 0, data: true });
      }
      // Zeros, then data in its second 4 KiB: the unit holding that is allocated; the rest of
      // the 64 KiB is in that unit (64 KiB clusters) or zero clusters (4 KiB): all masks 0x33.
      expect(at(ZERO_THEN_DATA + 4 * K)).toMatchObject({ depth: 0, data: true });
      expect(at(ZERO_THEN_DATA)?.depth).toBe(0);
      // Allocated, then all zeros: kept as data, or a zero cluster when packed by `compress`.
      expect(at(DATA_THEN_ZERO)).toMatchObject(
        options.compress ? { depth: 0, zero: true, data: false } : { depth: 0 },
      );
      for (const offset of UNTOUCHED) expect(at(offset)?.depth, `untouched ${offset}`).toBe(1);
      expect(at(256 * K)).toMatchObject({ data: true }); // base data shows through
    },
  );

  it('stores the name and format in the header cluster, refuses what does not fit (backing)', async () => {
    const name = (n: number) => 'n'.repeat(n);
    const make = (file: string, clusterSize?: number, format?: string) => () =>
      createDiskWriter('qcow2', memorySink(), MiB, { clusterSize, backing: { file, format } });
    expect(await reason(make(name(1023)))).toBe('no error');
    expect(await reason(make(name(1024)))).toBe('backing');
    expect(await reason(make('€'.repeat(342)))).toBe('backing'); // 1026 UTF-8 bytes
    expect(await reason(make(''))).toBe('backing');
    expect(await reason(make('base.qcow2', undefined, ''))).toBe('backing');
    // 512-byte clusters: 104 header bytes, the 8-byte end marker, then at most 400 name bytes
    // (384 after a backing format extension of 16 bytes).
    expect(await reason(make(name(400), 512))).toBe('no error');
    expect(await reason(make(name(401), 512))).toBe('backing');
    expect(await reason(make(name(384), 512, 'qcow2'))).toBe('no error');
    expect(await reason(make(name(385), 512, 'qcow2'))).toBe('backing');
    const vdi = () => createDiskWriter('vdi', memorySink(), MiB, { backing: { file: 'base.vdi' } });
    expect(await reason(vdi)).toBe('backing');
  });

  it('a name that fills the header cluster exactly opens, with and without a format', async () => {
    for (const format of [undefined, 'raw']) {
      const file = 'b'.repeat(format ? 384 : 400);
      const sink = memorySink();
      const writer = createDiskWriter('qcow2', sink, MiB, {
        clusterSize: 512,
        backing: { file, format },
      });
      await writer.write(0, new Uint8Array(512)); // a zero cluster
      await writer.finish();
      const parent = new Uint8Array(MiB).fill(7);
      const opened = await openContainer(memorySource(sink.bytes()), {
        resolveParent: async (hint) => {
          expect(hint).toBe(file);
          return memorySource(parent);
        },
      });
      const back = new Uint8Array(1024);
      await opened.disk.read(0, back);
      expect([back[0], back[511], back[512], back[1023]]).toEqual([0, 0, 7, 7]);
    }
  });
});
