import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BlockSource, IoError, memorySource, sliceSource } from '@diskube/core';
import { bitmapDifferences as differences } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { extDriver } from './driver.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from './features.js';
import { flip, setU16, setU32 } from './hex.test-support.js';
import { dumpe2fsUsed } from './images.test-support.js';
import { failure, fs, load, patchDesc, patchSuper, pathOf, u32 } from './patch.test-support.js';
import type { ExtReason } from './reasons.js';
import { parseSuperblock } from './superblock.js';

const M = 1024 * 1024;
const tools = requireTools(['mke2fs', 'debugfs', 'dumpe2fs'], 'ext corruption tests');
const CACHE = join(tmpdir(), 'diskube-ext-mkimage');

/** ext4, 1 KiB blocks, 2 groups (group 1 BLOCK_UNINIT), metadata_csum, 64-byte descriptors. */
const EXT4 = fs('16M', 'ext4 block=1K');
/** ext4 with uninit_bg (crc16 descriptors), 32-byte descriptors, 4 groups. */
const UNINIT_BG = fs('32M', 'ext4 block=1K features=uninit_bg,^metadata_csum,^64bit');
/** ext4, 4 KiB blocks, 5 groups, flex_bg: every group's tables live in group 0. */
const FLEX = fs('600M', 'ext4 block=4K', false);

describe.runIf(tools)('refusals and typed errors on patched real images', () => {
  it('accepts the unpatched image', async () => {
    const result = await extDriver.usedBlocks(memorySource(await load(EXT4)));
    expect(result.filesystem).toBe('ext4');
    expect(result.warnings).toEqual([]);
    expect(result.facts).toMatchObject({ groups: 2, state: 'clean', journal: 'internal' });
  });

  const superCases: Array<[string, (sb: Uint8Array) => void, string, ExtReason]> = [
    ['bad magic', (sb) => setU16(sb, 0x38, 0x1234), 'CORRUPT', 'bad-magic'],
    ['block size 128 KiB', (sb) => setU32(sb, 0x18, 7), 'CORRUPT', 'bad-block-size'],
    [
      'block count beyond the image',
      (sb) => setU32(sb, 0x4, 8192 * 4 + 1),
      'CORRUPT',
      'bad-inode-count',
    ],
    [
      'block and inode counts for 100 groups',
      (sb) => {
        setU32(sb, 0x4, 8192 * 100 + 1);
        setU32(sb, 0x0, u32(sb, 0x28) * 100);
      },
      'CORRUPT',
      'truncated',
    ],
    ['s_blocks_count_hi set', (sb) => setU32(sb, 0x150, 1), 'CORRUPT', 'bad-inode-count'],
    ['descriptor size 40', (sb) => setU16(sb, 0xfe, 40), 'CORRUPT', 'bad-desc-size'],
    ['blocks per group 0', (sb) => setU32(sb, 0x20, 0), 'CORRUPT', 'bad-group-size'],
    [
      'unknown INCOMPAT bit',
      (sb) => setU32(sb, 0x60, u32(sb, 0x60) | 0x40000000),
      'UNSUPPORTED',
      'unknown-feature',
    ],
    [
      'compression',
      (sb) => setU32(sb, 0x60, u32(sb, 0x60) | INCOMPAT.compression),
      'UNSUPPORTED',
      'unknown-feature',
    ],
    [
      'unknown RO_COMPAT bit',
      (sb) => setU32(sb, 0x64, u32(sb, 0x64) | 0x100000),
      'UNSUPPORTED',
      'unknown-feature',
    ],
    [
      'snapshot (RO_COMPAT)',
      (sb) => setU32(sb, 0x64, u32(sb, 0x64) | RO_COMPAT.snapshot),
      'UNSUPPORTED',
      'unknown-feature',
    ],
    [
      'journal device',
      (sb) => setU32(sb, 0x60, u32(sb, 0x60) | INCOMPAT.journal_dev),
      'UNSUPPORTED',
      'journal-device',
    ],
    [
      'needs_recovery',
      (sb) => setU32(sb, 0x60, u32(sb, 0x60) | INCOMPAT.needs_recovery),
      'DIRTY',
      'needs-recovery',
    ],
    ['state not clean', (sb) => setU16(sb, 0x3a, 0), 'DIRTY', 'not-clean'],
    ['state with errors', (sb) => setU16(sb, 0x3a, 3), 'DIRTY', 'errors'],
  ];
  for (const [name, patch, code, reason] of superCases) {
    it(`superblock: ${name} → ${code} ${reason}`, async () => {
      const img = await load(EXT4);
      patchSuper(img, patch);
      expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
        code,
        reason,
      });
    });
  }

  it('an unknown COMPAT bit is ignored', async () => {
    const img = await load(EXT4);
    patchSuper(img, (sb) => setU32(sb, 0x5c, u32(sb, 0x5c) | 0x40000000));
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.facts.features).toContain('FEATURE_C30');
  });

  it('superblock checksum mismatch → CORRUPT checksum; assumeUsedOnDoubt → all used', async () => {
    const img = await load(EXT4);
    patchSuper(
      img,
      (sb) => {
        flip(sb, 0x78, 0x20);
      },
      false,
    );
    const source = memorySource(img);
    expect(await failure(extDriver.usedBlocks(source))).toMatchObject({
      code: 'CORRUPT',
      reason: 'checksum' satisfies ExtReason,
    });
    const result = await extDriver.usedBlocks(source, { assumeUsedOnDoubt: true });
    expect(result.used.count()).toBe(result.blockCount);
    expect(result.tail.used).toBe(true);
    expect(result.warnings.map((w) => [w.code, w.reason])).toEqual([['assumed-used', 'checksum']]);
  });

  it('dirty with assumeUsedOnDoubt → every block used, one warning per reason', async () => {
    const img = await load(EXT4);
    patchSuper(img, (sb) => {
      setU32(sb, 0x60, u32(sb, 0x60) | INCOMPAT.needs_recovery);
      setU16(sb, 0x3a, 0);
    });
    const result = await extDriver.usedBlocks(memorySource(img), { assumeUsedOnDoubt: true });
    expect(result.used.count()).toBe(result.blockCount);
    expect(result.warnings.map((w) => [w.code, w.reason])).toEqual([
      ['assumed-used', 'needs-recovery'],
      ['assumed-used', 'not-clean'],
    ]);
  });

  it('descriptor checksum mismatch (crc32c and crc16) → CORRUPT checksum', async () => {
    for (const recipe of [EXT4, UNINIT_BG]) {
      const img = await load(recipe);
      patchDesc(
        img,
        1,
        (d) => {
          flip(d, 0xc, 1);
        },
        false,
      );
      expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
        code: 'CORRUPT',
        reason: 'checksum' satisfies ExtReason,
      });
      const doubt = await extDriver.usedBlocks(memorySource(img), { assumeUsedOnDoubt: true });
      expect(doubt.used.count()).toBe(doubt.blockCount);
    }
  });

  const descCases: Array<[string, (d: Uint8Array) => void]> = [
    ['block bitmap past the end', (d) => setU32(d, 0x0, 0x7fffffff)],
    ['block bitmap at 0 (before the first data block)', (d) => setU32(d, 0x0, 0)],
    ['inode bitmap past the end', (d) => setU32(d, 0x4, 16384)],
    ['inode table running past the end', (d) => setU32(d, 0x8, 16384 - 10)],
    ['block bitmap _hi set', (d) => setU32(d, 0x20, 1)],
  ];
  for (const [name, patch] of descCases) {
    it(`descriptor: ${name} → CORRUPT bad-location`, async () => {
      const img = await load(EXT4);
      patchDesc(img, 1, patch);
      expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
        code: 'CORRUPT',
        reason: 'bad-location' satisfies ExtReason,
      });
    });
  }

  it('descriptor table pointer (s_first_meta_bg under meta_bg) out of range → CORRUPT', async () => {
    const img = await load(EXT4);
    patchSuper(img, (sb) => {
      setU32(sb, 0x60, u32(sb, 0x60) | INCOMPAT.meta_bg);
      setU32(sb, 0x104, 5);
    });
    expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-first-meta-bg' satisfies ExtReason,
    });
  });

  it('block bitmap checksum mismatch → that group fully used + warning', async () => {
    const img = await load(EXT4);
    const clean = await extDriver.usedBlocks(memorySource(img));
    const bitmapBlock = u32(img, 2048); // group 0's bg_block_bitmap_lo
    flip(img, bitmapBlock * 1024 + 700, 0xff); // blocks 5601–5608 of group 0 flip
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.warnings.map((w) => w.code)).toEqual(['bitmap-checksum']);
    expect(result.used.countRange(1, 8192)).toBe(8192);
    // Group 1 is untouched.
    expect(result.used.countRange(8193, result.blockCount - 8193)).toBe(
      clean.used.countRange(8193, clean.blockCount - 8193),
    );
  });

  it('BLOCK_UNINIT honoured only with checksummed descriptors', async () => {
    const img = await load(EXT4);
    const sb = parseSuperblock(img.subarray(1024, 2048));
    expect(sb.featureRoCompat & RO_COMPAT.metadata_csum).not.toBe(0);
    // Without metadata_csum and uninit_bg the flag means nothing: group 1's bitmap is read
    // (and mke2fs wrote it, so the result is the same).
    const before = await extDriver.usedBlocks(memorySource(img));
    patchSuper(img, (b) => setU32(b, 0x64, u32(b, 0x64) & ~RO_COMPAT.metadata_csum), false);
    const after = await extDriver.usedBlocks(memorySource(img));
    expect(after.used.equals(before.used)).toBe(true);
  });

  it('truncation at many offsets → CORRUPT truncated, never a crash', async () => {
    const img = await load(EXT4);
    const cuts = [
      0,
      1,
      1023,
      1024,
      1500,
      2047,
      2048,
      3000,
      8192,
      65536,
      1 << 20,
      8 * M,
      img.length - 1,
    ];
    for (const cut of cuts) {
      const source = memorySource(img.subarray(0, cut));
      expect(await extDriver.probe(source)).toEqual(cut >= 2048 ? expect.anything() : null);
      expect(await failure(extDriver.usedBlocks(source))).toMatchObject({
        code: 'CORRUPT',
        reason: 'truncated' satisfies ExtReason,
      });
    }
  });

  it('failing reads surface as IO errors; probe returns null', async () => {
    const img = await load(EXT4);
    let reads = 0;
    const source: BlockSource = {
      size: img.length,
      async read(offset, dst) {
        if (++reads > 2) throw new IoError('simulated', { offset, reason: 'read-failed' });
        dst.set(img.subarray(offset, offset + dst.length));
      },
    };
    expect((await failure(extDriver.usedBlocks(source))).code).toBe('IO');
    reads = 0;
    const failing: BlockSource = { size: img.length, read: source.read };
    reads = 100;
    expect(await extDriver.probe(failing)).toBeNull();
  });

  it('a source larger than the filesystem: tail reported not used, with a warning', async () => {
    const fs = await load(EXT4);
    const img = new Uint8Array(fs.length + 5000);
    img.set(fs);
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.blockCount).toBe(16384);
    expect(result.tail).toEqual({
      offset: 16 * M,
      length: 5000,
      used: false,
      reason: 'after end of filesystem',
    });
    expect(result.warnings.map((w) => w.code)).toEqual(['tail-after-filesystem']);
    // Less than a block after the filesystem is ordinary (mke2fs rounds down): no warning.
    const small = new Uint8Array(fs.length + 1000);
    small.set(fs);
    expect((await extDriver.usedBlocks(memorySource(small))).warnings).toEqual([]);
  });

  it('flex_bg tables in a BLOCK_UNINIT group are kept (computed from all descriptors)', async () => {
    // Group 0 holds every group's bitmaps and inode tables. Mark it BLOCK_UNINIT (a state mke2fs
    // never writes, but the rule must hold): its bitmap is then not read, and the layout alone
    // must still keep the superblock, descriptors, reserved GDT and all five groups' tables.
    const path = await pathOf(FLEX);
    const img = new Uint8Array(await readFile(path));
    const text = dumpe2fsUsed(path).text;
    const expected = new Set<number>();
    const ranges = [
      ...text.matchAll(/(?:superblock|descriptors|GDT blocks|bitmap|table) at (\d+)(?:-(\d+))?/g),
    ];
    expect(ranges.length).toBeGreaterThan(10);
    for (const m of ranges) {
      const a = Number(m[1]);
      const b = m[2] ? Number(m[2]) : a;
      if (a < 32768) for (let x = a; x <= b; x++) expected.add(x);
    }
    // The free count the kernel would give such a group, so that only the layout decides.
    const free = 32768 - expected.size;
    patchDesc(img, 0, (d) => {
      setU16(d, 0x12, d[0x12]! | 2);
      setU16(d, 0xc, free & 0xffff);
      setU16(d, 0x2c, free >>> 16);
    });
    const result = await extDriver.usedBlocks(memorySource(img));
    expect(result.warnings).toEqual([]);
    const got = [...result.used.runs(0, 32768)].flatMap(([s, n]) =>
      Array.from({ length: n }, (_, i) => s + i),
    );
    expect(got).toEqual([...expected].sort((x, y) => x - y));
  });
});

describe.runIf(tools)('layout facts and edge images', () => {
  it('reports facts', async () => {
    const result = await extDriver.usedBlocks(memorySource(await load(UNINIT_BG)));
    expect(result.facts).toMatchObject({
      uuid: '01234567-89ab-cdef-0123-456789abcdef',
      groups: 4,
      blockSize: 1024,
      descriptorSize: 32,
      state: 'clean',
    });
    expect(result.facts.features).toEqual(
      expect.arrayContaining(['has_journal', 'uninit_bg', 'flex_bg']),
    );
    expect(result.facts.features).not.toContain('64bit');
    expect(COMPAT.has_journal).toBe(4);
  });
});

describe.runIf(tools)('partitions and cancellation', () => {
  it('reads an ext4 inside a GPT partition through sliceSource, equal to dumpe2fs', async () => {
    const spec = `disk 160M gpt
  partition 96M ext4 block=1K uuid=01234567-89ab-cdef-0123-456789abcdef
    prefill random seed=5
    file /d/a 2M random seed=1
    file /d/b 3M random seed=2
    delete /d/a
`;
    const { image, manifest } = await buildImage(spec, { cacheDir: CACHE });
    const part = manifest.partitions[0]!;
    expect(part.offset).toBeGreaterThan(0);
    const disk = memorySource(new Uint8Array(await readFile(image)));
    const result = await extDriver.usedBlocks(sliceSource(disk, part.offset, part.size));
    const oracle = dumpe2fsUsed(`${image}?offset=${part.offset}`);
    expect(differences(result.used, oracle.used)).toEqual({ missing: [], extra: [] });
    // The whole disk is not an ext filesystem (byte 1024 is inside the GPT entry array).
    expect(await extDriver.probe(disk)).toBeNull();
  });

  it('an aborted signal rejects', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(
      extDriver.usedBlocks(memorySource(await load(EXT4)), { signal: controller.signal }),
    ).rejects.toThrow('stop');
  });
});

describe.runIf(tools)('multi-mount protection', () => {
  const MMP = fs('16M', 'ext4 block=1K features=mmp');

  it('a clean MMP block is accepted; in use or fsck → DIRTY mmp-in-use', async () => {
    const img = await load(MMP);
    const sb = parseSuperblock(img.subarray(1024, 2048));
    expect(sb.featureIncompat & INCOMPAT.mmp).not.toBe(0);
    const clean = await extDriver.usedBlocks(memorySource(img));
    // The MMP block itself is allocated in the bitmap.
    expect(clean.used.get(sb.mmpBlock)).toBe(true);
    const at = sb.mmpBlock * sb.blockSize;
    for (const seq of [42, 0xe24d4d50]) {
      setU32(img, at + 4, seq);
      expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
        code: 'DIRTY',
        reason: 'mmp-in-use' satisfies ExtReason,
      });
    }
    const doubt = await extDriver.usedBlocks(memorySource(img), { assumeUsedOnDoubt: true });
    expect(doubt.warnings.map((w) => [w.code, w.reason])).toEqual([['assumed-used', 'mmp-in-use']]);
    setU32(img, at, 0x12345678);
    expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-magic' satisfies ExtReason,
    });
  });

  it('an MMP block pointer outside the filesystem → CORRUPT bad-location', async () => {
    const img = await load(MMP);
    patchSuper(img, (sb) => setU32(sb, 0x168, 1 << 30));
    expect(await failure(extDriver.usedBlocks(memorySource(img)))).toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-location' satisfies ExtReason,
    });
  });
});

describe.runIf(tools)('hostile geometry stays bounded', () => {
  it('2048 groups of 8 blocks over garbage descriptors → CORRUPT quickly', async () => {
    const img = await load(EXT4);
    patchSuper(img, (sb) => {
      setU32(sb, 0x20, 8); // blocks per group
      setU32(sb, 0x28, 1); // inodes per group
      setU32(sb, 0x0, Math.ceil((16384 - 1) / 8)); // inode count = groups × 1
    });
    const e = await failure(extDriver.usedBlocks(memorySource(img)));
    expect(e.code).toBe('CORRUPT');
  });
});
