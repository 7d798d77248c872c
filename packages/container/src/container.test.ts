import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type BlockSource, hasErrorCode, memorySource } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  containerImage,
  dataRegions,
  execFileSync,
  haveQemuImg,
  RAW_SIZE,
  random,
  readRaw,
  VARIANTS,
  type Variant,
} from './images.test-support.js';
import { detectContainer, openContainer } from './index.js';

const hasQemu = haveQemuImg();

const EXPECTED_FORMAT: Record<Variant, string> = {
  qcow2: 'qcow2',
  'qcow2-v2': 'qcow2',
  'qcow2-deflate': 'qcow2',
  'qcow2-zstd': 'qcow2',
  vdi: 'vdi',
  'vdi-static': 'vdi',
  'vmdk-sparse': 'vmdk',
  'vmdk-stream': 'vmdk',
  'vmdk-flat': 'vmdk',
  'vpc-dynamic': 'vhd',
  'vpc-fixed': 'vhd',
  vhdx: 'vhdx',
};

/** Formats that leave holes unallocated, so some unallocated ranges must be reported. */
const SPARSE: ReadonlySet<Variant> = new Set([
  'qcow2',
  'qcow2-v2',
  'qcow2-deflate',
  'qcow2-zstd',
  'vdi',
  'vmdk-sparse',
  'vmdk-stream',
  'vpc-dynamic',
  'vhdx',
]);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const opened: BlockSource[] = [];
afterAll(async () => {
  for (const s of opened) await s.close?.();
});

async function open(variant: Variant, size = RAW_SIZE) {
  const path = containerImage(variant, size);
  const file = await openFileSource(path);
  opened.push(file);
  return openContainer(file, {
    resolveExtent: async (name) => {
      const extent = await openFileSource(join(dirname(path), name));
      opened.push(extent);
      return extent;
    },
  });
}

describe.runIf(hasQemu).each([RAW_SIZE, 10 * 1024 * 1024 + 1536])('images of %i bytes', (size) => {
  const raw = readRaw(size);
  const rawSha = sha(raw);
  const zeros = Buffer.alloc(size);

  describe.each(VARIANTS)('%s', (variant) => {
    it('is detected by magic and reads back the raw image exactly', async () => {
      const { format, disk, info } = await open(variant, size);
      expect(format).toBe(EXPECTED_FORMAT[variant]);
      expect(disk.size).toBe(size);
      expect(info.virtualSize).toBe(size);
      const all = new Uint8Array(disk.size);
      await disk.read(0, all);
      expect(sha(all)).toBe(rawSha);
    });

    it('matches the raw image on random reads that cross allocation units', async () => {
      const { disk } = await open(variant, size);
      const r = random(4096, 99);
      let k = 0;
      const next = () => (r[k++]! | (r[k++]! << 8) | (r[k++]! << 16)) >>> 0;
      for (let i = 0; i < 120; i++) {
        // Half the reads start just before a unit boundary, so they straddle two units.
        const unit = disk.allocationUnit;
        const base =
          i % 2 === 0
            ? Math.floor((next() * 64) % (size / unit)) * unit - (next() % 777)
            : (next() * 37) % size;
        const offset = Math.max(0, Math.min(size - 1, base));
        const length = Math.min(size - offset, 1 + ((next() * 13) % (3 * unit + 1000)));
        const got = new Uint8Array(length);
        await disk.read(offset, got);
        const same = Buffer.from(got).equals(raw.subarray(offset, offset + length));
        expect(same, `read of ${length} at ${offset}`).toBe(true);
      }
    });

    it('reports unallocated ranges that are zero in the raw image', async () => {
      const { disk } = await open(variant, size);
      let total = 0;
      let last = -1;
      for await (const [offset, length] of disk.unallocatedRanges()) {
        expect(offset).toBeGreaterThan(last);
        expect(length).toBeGreaterThan(0);
        expect(offset + length).toBeLessThanOrEqual(size);
        expect(zeros.subarray(0, length).equals(raw.subarray(offset, offset + length))).toBe(true);
        last = offset + length;
        total += length;
      }
      if (SPARSE.has(variant)) {
        // The data regions cover a few MiB; most of the disk must be known unallocated.
        const data = dataRegions(size).reduce((s, [, l]) => s + l, 0);
        expect(total).toBeGreaterThan(size - data - size / 3);
      } else {
        expect(total).toBe(0);
      }
    });
  });
});

describe.runIf(hasQemu)('special cases', () => {
  it('treats a file with no container magic as raw', async () => {
    const bytes = random(8192, 5);
    expect(await detectContainer(memorySource(bytes))).toBe('raw');
    const { format, disk } = await openContainer(memorySource(bytes));
    expect(format).toBe('raw');
    const got = new Uint8Array(100);
    await disk.read(8000, got);
    expect(got).toEqual(bytes.subarray(8000, 8100));
  });

  it('refuses a VMDK descriptor without an extent resolver, naming the file', async () => {
    const file = await openFileSource(containerImage('vmdk-flat'));
    opened.push(file);
    const error = await openContainer(file).catch((e: unknown) => e);
    expect(hasErrorCode(error, 'UNSUPPORTED')).toBe(true);
    expect((error as { reason: string }).reason).toBe('needs-extent-file');
    expect(String(error)).toContain('disk-flat');
  });

  const work = mkdtempSync(join(tmpdir(), 'diskube-container-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('reads qcow2 v3 zero clusters as zeros and reports exactly the ranges qemu-img map calls holes', async () => {
    const path = join(work, 'zero.qcow2');
    execFileSync('qemu-img', ['create', '-f', 'qcow2', path, '4M'], { stdio: 'ignore' });
    execFileSync(
      'qemu-io',
      [
        '-c',
        'write -P 0xab 0 1M',
        '-c',
        'write -z 256k 128k',
        '-c',
        'write -z -u 1M 64k',
        '-c',
        'write -P 0xcd 3M 4k',
        path,
      ],
      { stdio: 'ignore' },
    );
    const map = JSON.parse(
      execFileSync('qemu-img', ['map', '--output=json', path]).toString(),
    ) as Array<{
      start: number;
      length: number;
      data: boolean;
    }>;
    const holes: Array<[number, number]> = [];
    for (const m of map) {
      if (m.data) continue;
      const prev = holes[holes.length - 1];
      if (prev && prev[0] + prev[1] === m.start) prev[1] += m.length;
      else holes.push([m.start, m.length]);
    }
    const { disk } = await openContainer(memorySource(new Uint8Array(readFileSync(path))));
    const ours: Array<[number, number]> = [];
    for await (const r of disk.unallocatedRanges()) ours.push(r);
    expect(ours).toEqual(holes);
    const all = new Uint8Array(disk.size);
    await disk.read(0, all);
    const expected = new Uint8Array(4 << 20);
    expected.fill(0xab, 0, 1 << 20);
    expected.fill(0, 256 << 10, 384 << 10);
    expected.fill(0xcd, 3 << 20, (3 << 20) + 4096);
    expect(sha(all)).toBe(sha(expected));
  });

  it('refuses a qcow2 overlay with a backing file, naming it', async () => {
    const base = join(work, 'base.qcow2');
    const overlay = join(work, 'overlay.qcow2');
    execFileSync('qemu-img', ['create', '-f', 'qcow2', base, '4M'], { stdio: 'ignore' });
    execFileSync('qemu-img', ['create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay], {
      stdio: 'ignore',
    });
    const error = await openContainer(memorySource(new Uint8Array(readFileSync(overlay)))).catch(
      (e: unknown) => e,
    );
    expect(hasErrorCode(error, 'UNSUPPORTED')).toBe(true);
    expect((error as { reason: string }).reason).toBe('backing-file');
    expect(String(error)).toContain(base);
  });

  it.each([
    ['qcow2', []],
    ['vhdx', []],
    ['vmdk', []],
    ['vmdk', ['-o', 'subformat=twoGbMaxExtentSparse']],
    ['vdi', []],
    ['vpc', []],
  ])(
    'reads a 5 GiB sparse %s %j past its first tables (L1, GD, VHDX chunk, extents)',
    async (fmt, options) => {
      const path = join(work, `big-${options.length}.${fmt}`);
      const far = 4.5 * 2 ** 30;
      execFileSync('qemu-img', ['create', '-f', fmt, ...options, path, '5G'], { stdio: 'ignore' });
      execFileSync(
        'qemu-io',
        ['-f', fmt, '-c', `write -P 0x5a ${far} 1M`, '-c', 'write -P 0x33 0 64k', path],
        { stdio: 'ignore' },
      );
      const file = await openFileSource(path);
      opened.push(file);
      const { disk } = await openContainer(file, {
        resolveExtent: async (name) => {
          const extent = await openFileSource(join(work, name));
          opened.push(extent);
          return extent;
        },
      });
      expect(disk.size).toBeGreaterThanOrEqual(5 * 2 ** 30 - 2 ** 24);
      const got = new Uint8Array(3 << 20);
      await disk.read(far - (1 << 20), got);
      expect(got.subarray(0, 1 << 20).every((b) => b === 0)).toBe(true);
      expect(got.subarray(1 << 20, 2 << 20).every((b) => b === 0x5a)).toBe(true);
      expect(got.subarray(2 << 20).every((b) => b === 0)).toBe(true);
      const head = new Uint8Array(128 << 10);
      await disk.read(0, head);
      expect(head.subarray(0, 64 << 10).every((b) => b === 0x33)).toBe(true);
      expect(head.subarray(64 << 10).every((b) => b === 0)).toBe(true);
      // Unallocated ranges never cover the written data, and cover nearly all of the rest.
      let total = 0;
      for await (const [o, l] of disk.unallocatedRanges()) {
        expect(o + l <= far || o >= far + (1 << 20)).toBe(true);
        expect(o >= 64 << 10).toBe(true);
        total += l;
      }
      expect(total).toBeGreaterThan(disk.size - 2 ** 27);
    },
  );

  it('reads VHDX blocks written as zeros', async () => {
    const path = join(work, 'zero.vhdx');
    execFileSync('qemu-img', ['create', '-f', 'vhdx', '-o', 'block_size=1M', path, '8M'], {
      stdio: 'ignore',
    });
    execFileSync('qemu-io', ['-c', 'write -P 0xab 0 3M', '-c', 'write -z 1M 1M', path], {
      stdio: 'ignore',
    });
    const { disk } = await openContainer(memorySource(new Uint8Array(readFileSync(path))));
    const all = new Uint8Array(disk.size);
    await disk.read(0, all);
    const expected = new Uint8Array(8 << 20);
    expected.fill(0xab, 0, 3 << 20);
    expected.fill(0, 1 << 20, 2 << 20);
    expect(sha(all)).toBe(sha(expected));
    for await (const [o, l] of disk.unallocatedRanges()) {
      expect(expected.subarray(o, o + l).every((b) => b === 0)).toBe(true);
    }
  });
});
