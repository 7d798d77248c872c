import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ChainState, type StateDigestSource } from './chain.js';
import { formatChangedRanges, parseChangedRanges } from './changed-ranges.js';
import { blockDigest } from './digest.js';
import { BackupReader, openBackup } from './reader.js';
import type { FormatReason } from './reasons.js';
import { memoryWritable, prng, randomBitmap, randomBytesFrom } from './test-support.js';
import {
  defaultThreads,
  MAX_DEFAULT_THREADS,
  type WriteOptions,
  writeIncremental,
  writeSnapshot,
} from './writer.js';

async function toMemory(
  options: Omit<WriteOptions, 'out'> & {
    chain?: BackupReader[];
    changedRanges?: { offset: number; length: number }[];
    parentDigests?: StateDigestSource | null;
  },
) {
  const out = memoryWritable();
  const result = options.chain
    ? await writeIncremental({ ...options, chain: options.chain, out: out.stream })
    : await writeSnapshot({ ...options, out: out.stream });
  const bytes = out.bytes();
  const windows = options.windowBlocks ? { windowBlocks: options.windowBlocks } : {};
  return {
    result,
    bytes,
    reader: await BackupReader.fromSource(memorySource(bytes), '<memory>', windows),
  };
}

/** The state of a chain's newest backup over the whole disk, merged window by window. */
async function wholeState(chain: BackupReader[]) {
  const state = ChainState.fromChain(chain);
  const n = chain[0]!.header.blockCount;
  const used = new Bitmap(n);
  const zero = new Bitmap(n);
  const digests: Uint8Array[] = [];
  for (let w = 0; w < state.windowCount; w++) {
    const win = await state.window(w);
    used.setBytes(win.start, win.used.toBytes(), win.length);
    zero.setBytes(win.start, win.zero.toBytes(), win.length);
    digests.push(win.digests);
  }
  return { state, used, zero, digests: Buffer.concat(digests) };
}

function block(image: Uint8Array, i: number, bs: number) {
  return image.subarray(i * bs, (i + 1) * bs);
}

/**
 * How many of `held` (a backup's held blocks, in order) the writer holds as repeats (SPEC.md
 * §6.8): copies of a block stored in an earlier frame of `bpf` blocks (a copy inside the frame
 * being filled is left to zstd, and stored again).
 */
function expectedRepeats(held: Uint8Array[], bpf: number): number {
  const firstAt = new Map<string, number>();
  let repeats = 0;
  let ordinal = 0;
  for (const bytes of held) {
    const key = Buffer.from(bytes).toString('base64');
    const target = firstAt.get(key);
    if (target !== undefined && target < ordinal - (ordinal % bpf)) {
      repeats++;
      continue;
    }
    if (target === undefined) firstAt.set(key, ordinal);
    ordinal++;
  }
  return repeats;
}

describe('snapshot round trip', () => {
  const cases = [
    { bs: 512, n: 300, tail: 100, compress: { type: 'zstd' as const, level: 1 }, bpf: 16 },
    { bs: 4096, n: 64, tail: 0, compress: { type: 'none' as const }, bpf: 5 },
    { bs: 1024, n: 257, tail: 3000, compress: { type: 'zstd' as const, level: 19 }, bpf: 1 },
    // Windows of 64 blocks: bitmaps, digests and frames cross window boundaries.
    { bs: 512, n: 300, tail: 100, compress: { type: 'zstd' as const, level: 1 }, bpf: 16, win: 64 },
    { bs: 1024, n: 257, tail: 0, compress: { type: 'none' as const }, bpf: 7, win: 128 },
  ];
  for (const c of cases) {
    test(`${c.bs}-byte blocks, ${c.compress.type}, ${c.bpf} blocks per frame, windows of ${c.win ?? 'default'}`, async () => {
      const rand = prng(c.bs + c.n);
      const image = randomBytesFrom(rand, c.n * c.bs + c.tail);
      // Compressible blocks, all-zero blocks and random blocks.
      for (let i = 0; i < c.n; i += 7) block(image, i, c.bs).fill(i & 0xff);
      for (let i = 3; i < c.n; i += 11) block(image, i, c.bs).fill(0);
      const used = randomBitmap(rand, c.n, 0.7);
      const { result, bytes, reader } = await toMemory({
        source: memorySource(image),
        used,
        blockSize: c.bs,
        compress: c.compress,
        blocksPerFrame: c.bpf,
        ...(c.win ? { windowBlocks: c.win } : {}),
        meta: {
          sourceName: 'disk.raw',
          filesystem: 'ext4',
          createdAt: new Date(86_400_000),
          facts: { label: 'root' },
        },
      });
      expect(result.fileLength).toBe(bytes.length);
      expect((await reader.bitmap('used'))!.equals(used)).toBe(true);
      const zeros = [...Array(c.n).keys()].filter(
        (i) => used.get(i) && block(image, i, c.bs).every((b) => b === 0),
      );
      expect(
        (await reader.bitmap('zero'))!
          .toRanges()
          .flatMap(([s, l]) => Array.from({ length: l }, (_, k) => s + k)),
      ).toEqual(zeros);
      expect(result.storedBlocks).toBe(used.count() - zeros.length);
      for (let i = 0; i < c.n; i++) {
        if (used.get(i)) expect(await reader.readBlock(i)).toEqual(block(image, i, c.bs));
        else
          await expect(reader.readBlock(i)).rejects.toMatchObject({
            code: 'INVALID_ARGUMENT',
            reason: 'not-in-backup' satisfies FormatReason,
          });
      }
      expect(await reader.readTail()).toEqual(c.tail > 0 ? image.subarray(c.n * c.bs) : null);
      const info = reader.info();
      expect(info).toMatchObject({
        kind: 'snapshot',
        sourceName: 'disk.raw',
        filesystem: 'ext4',
        createdAt: '1970-01-02T00:00:00.000Z',
        meta: { label: 'root' },
        usedBlocks: used.count(),
      });
      const report = await reader.verify();
      expect(report).toMatchObject({
        ok: true,
        blocksChecked: result.storedBlocks,
        framesChecked: result.frames,
      });
      if (c.compress.type === 'zstd') expect(bytes.length).toBeLessThan(result.storedBlocks * c.bs);
    });
  }

  test('worker-thread compression writes the same bytes as in-thread compression', async () => {
    const rand = prng(77);
    const bs = 4096;
    const image = randomBytesFrom(rand, 600 * bs);
    for (let i = 0; i < 400; i += 2) image.fill(i & 0xff, i * bs, i * bs + 3000);
    image.fill(0, 100 * bs, 130 * bs); // all-zero blocks inside a run of used blocks
    // Blocks 400… stay random: whole frames there do not compress and are stored raw.
    const used = randomBitmap(rand, 600, 0.8);
    const fixed = { backupId: new Uint8Array(16).fill(1), meta: { createdAt: new Date(0) } };
    const files = [];
    for (const threads of [0, 1, 2]) {
      const { bytes, reader } = await toMemory({
        source: memorySource(image),
        used,
        blockSize: bs,
        compress: { type: 'zstd', level: 3 },
        blocksPerFrame: 7,
        threads,
        ...fixed,
      });
      expect((await reader.verify()).ok).toBe(true);
      expect(new Set((await reader.frameIndex()).map((f) => f.method))).toEqual(new Set([0, 1]));
      expect((await reader.bitmap('zero'))!.countRange(100, 30)).toBe(used.countRange(100, 30));
      files.push(bytes);
    }
    expect(Buffer.compare(files[1]!, files[0]!)).toBe(0);
    expect(Buffer.compare(files[2]!, files[0]!)).toBe(0);
  });

  test('worker-thread incrementals write the same bytes as in-thread ones', async () => {
    const rand = prng(78);
    const bs = 4096;
    const image = randomBytesFrom(rand, 300 * bs);
    for (let i = 0; i < 300; i += 3) image.fill(i & 0xff, i * bs, (i + 1) * bs);
    const used = randomBitmap(rand, 300, 0.7);
    const fixed = { backupId: new Uint8Array(16).fill(2), meta: { createdAt: new Date(0) } };
    const parent = await toMemory({
      source: memorySource(image),
      used,
      blockSize: bs,
      blocksPerFrame: 5,
      threads: 0,
    });
    const next = image.slice();
    for (let i = 10; i < 300; i += 7) next.fill(i & 0x7f, i * bs, i * bs + 100);
    next.fill(0, 50 * bs, 60 * bs);
    const files = [];
    for (const threads of [0, 2]) {
      const { bytes, reader, result } = await toMemory({
        source: memorySource(next),
        used,
        blockSize: bs,
        chain: [parent.reader],
        blocksPerFrame: 5,
        threads,
        ...fixed,
      });
      expect((await reader.verify()).ok).toBe(true);
      expect(result.storedBlocks).toBeGreaterThan(10);
      files.push(bytes);
    }
    expect(Buffer.compare(files[1]!, files[0]!)).toBe(0);
  });

  test('the default worker count follows the cores, up to a cap, for large backups only', () => {
    expect(MAX_DEFAULT_THREADS).toBe(4);
    expect(defaultThreads(1 << 30, 2)).toBe(2);
    expect(defaultThreads(1 << 30, 64)).toBe(4);
    expect(defaultThreads(1 << 20, 64)).toBe(0);
  });

  test('empty used bitmap, zero-length image, and tail not kept', async () => {
    const image = new Uint8Array(4096 + 10).fill(9);
    const { reader, result } = await toMemory({
      source: memorySource(image),
      used: new Bitmap(8),
      blockSize: 512,
      tailUsed: false,
    });
    expect(result).toMatchObject({ storedBlocks: 0, frames: 0, bytesRead: 0 });
    expect(await reader.readTail()).toBe(null);
    expect((await reader.verify()).ok).toBe(true);
    const empty = await toMemory({
      source: memorySource(new Uint8Array(0)),
      used: new Bitmap(0),
      blockSize: 4096,
    });
    expect(empty.reader.header.sourceSize).toBe(0);
  });

  test('all-zero used blocks carry no payload', async () => {
    const image = new Uint8Array(64 * 4096);
    const used = new Bitmap(64).setAll();
    const { reader, result } = await toMemory({
      source: memorySource(image),
      used,
      blockSize: 4096,
    });
    expect(result).toMatchObject({ zeroBlocks: 64, storedBlocks: 0 });
    expect(reader.footer.framesLength).toBe(0);
    expect(await reader.readBlock(17)).toEqual(new Uint8Array(4096));
  });

  test('rejects bad arguments', async () => {
    const src = memorySource(new Uint8Array(4096));
    await expect(
      toMemory({ source: src, used: new Bitmap(9), blockSize: 512 }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(
      toMemory({ source: src, used: new Bitmap(2), blockSize: 1000 }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('incremental', () => {
  const bs = 512;
  const n = 200;
  test('records changed, newly used, newly unused and zeroed blocks; dirty list gives the same result', async () => {
    const rand = prng(99);
    const image = randomBytesFrom(rand, n * bs);
    const used = randomBitmap(rand, n, 0.5);
    const parent = await toMemory({
      source: memorySource(image),
      used,
      blockSize: bs,
      blocksPerFrame: 8,
    });
    const next = image.slice();
    const used2 = used.clone();
    const touched: number[] = [];
    const modify = (i: number, fill?: number) => {
      if (fill === undefined) block(next, i, bs).set(randomBytesFrom(rand, bs));
      else block(next, i, bs).fill(fill);
      touched.push(i);
    };
    const firstUsed = used.nextSet(0);
    const firstFree = used.nextClear(0);
    modify(firstUsed); // modified
    used2.set(firstFree);
    modify(firstFree); // newly used
    const freed = used.nextSet(firstUsed + 1);
    used2.clear(freed); // newly unused
    const zeroed = used.nextSet(freed + 1);
    modify(zeroed, 0); // now all zeros
    const rewritten = used.nextSet(zeroed + 1);
    touched.push(rewritten); // written with the same bytes: not a change
    const { reader, result } = await toMemory({
      source: memorySource(next),
      used: used2,
      blockSize: bs,
      chain: [parent.reader],
      blocksPerFrame: 8,
      digestTable: true,
    });
    const expectedChanged = [firstUsed, firstFree, freed, zeroed].sort((a, b) => a - b);
    expect(
      (await reader.bitmap('changed'))!
        .toRanges()
        .flatMap(([s, l]) => Array.from({ length: l }, (_, k) => s + k)),
    ).toEqual(expectedChanged);
    expect((await reader.bitmap('freed'))!.toRanges()).toEqual([[freed, 1]]);
    expect((await reader.bitmap('zero'))!.get(zeroed)).toBe(true);
    expect(result.storedBlocks).toBe(2);
    expect(reader.header.parentId).toEqual(parent.reader.header.backupId);
    expect(await reader.readBlock(firstFree)).toEqual(block(next, firstFree, bs));
    await expect(reader.readBlock(used.nextSet(rewritten + 1))).rejects.toMatchObject({
      reason: 'not-in-backup' satisfies FormatReason,
    });
    // The digest table covers the stored blocks only.
    expect((await reader.digestTable())!.length).toBe(16 * result.storedBlocks);
    const stored = (await reader.bitmap('stored'))!;
    for (let i = 0; i < n; i++) {
      const d = await reader.digestOf(i);
      if (stored.get(i)) expect(Buffer.from(d!).equals(blockDigest(block(next, i, bs)))).toBe(true);
      else expect(d).toBe(null);
    }
    // The same change from a hypervisor dirty list: only those bytes (and newly used blocks) read.
    const text = formatChangedRanges(touched.map((i) => ({ offset: i * bs + 10, length: 20 })));
    let neededBytes = 0;
    const viaRanges = await toMemory({
      source: memorySource(next),
      used: used2,
      blockSize: bs,
      chain: [parent.reader],
      blocksPerFrame: 8,
      digestTable: true,
      changedRanges: parseChangedRanges(text),
      onProgress: (p) => {
        neededBytes = p.bytesTotal;
      },
    });
    expect(neededBytes).toBe(touched.length * bs);
    // Reads may span small gaps between the listed blocks, but not all of the used blocks.
    expect(viaRanges.result.bytesRead).toBeGreaterThanOrEqual(touched.length * bs);
    expect(viaRanges.result.bytesRead).toBeLessThan(result.bytesRead);
    expect(result.bytesRead).toBeGreaterThanOrEqual(used2.count() * bs);
    for (const name of ['changed', 'zero'] as const)
      expect((await viaRanges.reader.bitmap(name))!.equals((await reader.bitmap(name))!)).toBe(
        true,
      );
    expect(await viaRanges.reader.digestTable()).toEqual(await reader.digestTable());
  });

  test.each([
    [undefined, 'table'],
    [64, 'table'],
    [undefined, 'frames'],
    [64, 'frames'],
    [undefined, 'cache'],
    [64, 'cache'],
  ] as const)(
    'a chain of 6 incrementals: digest and dirty-list paths agree (windows of %s blocks, parent digests from the %s)',
    async (win, digestsFrom) => {
      const rand = prng(606);
      const m = 300;
      const windows = win ? { windowBlocks: win } : {};
      // 'table': each file keeps a digest table; 'frames': none, the parent's blocks are read
      // back; 'cache': none, each backup's state digests are kept aside and handed to its child.
      const kept = new Map<string, Buffer>();
      const keep = () => {
        const parts: Uint8Array[] = [];
        return { parts, sink: { write: (d: Uint8Array) => void parts.push(d.slice()) } };
      };
      const digestOptions = (parent: BackupReader | null) => {
        if (digestsFrom === 'table') return { digestTable: true };
        if (digestsFrom === 'frames') return {};
        const cached = parent === null ? undefined : kept.get(parent.backupId);
        return cached === undefined
          ? {}
          : {
              parentDigests: {
                read: async (offset: number, into: Uint8Array) =>
                  void into.set(cached.subarray(offset, offset + into.length)),
              },
            };
      };
      let image = randomBytesFrom(rand, m * bs + 40);
      for (let i = 0; i < m; i += 9) block(image, i, bs).fill(0);
      // Copies of other blocks, before and after them, across windows: held as repeats.
      for (let i = 4; i < m; i += 13)
        block(image, i, bs).set(block(image, (i * 7) % m, bs).slice());
      let used = randomBitmap(rand, m, 0.6);
      let repeatsSeen = 0;
      const first = keep();
      const snap = await toMemory({
        source: memorySource(image),
        used,
        blockSize: bs,
        ...windows,
        ...digestOptions(null),
        stateDigests: first.sink,
      });
      kept.set(snap.reader.backupId, Buffer.concat(first.parts));
      const chain = [snap.reader];
      const viaRangesChain = [snap.reader];
      for (let step = 1; step <= 6; step++) {
        const prevImage = image;
        const prevUsed = used;
        image = image.slice();
        used = used.clone();
        const dirty: number[] = [];
        // New bytes several blocks get this step: the later ones are repeats of the first.
        const shared = randomBytesFrom(rand, bs);
        for (let i = 0; i < m; i++) {
          const r = rand();
          if (used.get(i)) {
            if (r < 0.06)
              block(image, i, bs).set(randomBytesFrom(rand, bs)); // modified
            else if (r < 0.1)
              used.clear(i); // freed, bytes left behind
            else if (r < 0.13)
              block(image, i, bs).fill(0); // zeroed
            else if (r < 0.15)
              block(image, i, bs)[7]! ^= 1; // one byte
            else if (r < 0.17)
              dirty.push(i); // rewritten with the same bytes
            else if (r < 0.2) block(image, i, bs).set(shared); // a copy
          } else if (r < 0.08) {
            used.set(i); // newly used: random, stale or zero bytes
            if (r < 0.04) block(image, i, bs).set(randomBytesFrom(rand, bs));
            else if (r < 0.05) block(image, i, bs).fill(0);
          }
          if (!block(image, i, bs).every((b, k) => b === prevImage[i * bs + k])) dirty.push(i);
        }
        // Independent expectation from the two states: what changed, what must be stored.
        const isZero = (img: Uint8Array, i: number) => block(img, i, bs).every((b) => b === 0);
        const expectChanged: number[] = [];
        const expectStored: number[] = [];
        for (let i = 0; i < m; i++) {
          const now = used.get(i);
          const before = prevUsed.get(i);
          const same =
            now === before &&
            (!now || Buffer.compare(block(image, i, bs), block(prevImage, i, bs)) === 0);
          if (!same) expectChanged.push(i);
          if (!same && now && !isZero(image, i)) expectStored.push(i);
        }
        const expectRepeats = expectedRepeats(
          expectStored.map((i) => block(image, i, bs)),
          5,
        );
        repeatsSeen += expectRepeats;
        const common = {
          source: memorySource(image),
          used,
          blockSize: bs,
          blocksPerFrame: 5,
          ...windows,
        };
        const sinks = [keep(), keep()] as const;
        const inc = await toMemory({
          ...common,
          chain: [...chain],
          ...digestOptions(chain.at(-1)!),
          stateDigests: sinks[0].sink,
        });
        const ranges = dirty.map((i) => ({ offset: i * bs, length: bs }));
        const viaRanges = await toMemory({
          ...common,
          chain: [...viaRangesChain],
          changedRanges: ranges,
          ...digestOptions(viaRangesChain.at(-1)!),
          stateDigests: sinks[1].sink,
        });
        // The state digests handed to the sink are those of the image's used non-zero blocks.
        const want: Uint8Array[] = [];
        for (let i = 0; i < m; i++)
          if (used.get(i) && !isZero(image, i)) want.push(blockDigest(block(image, i, bs)));
        for (const [k, { reader }] of [inc, viaRanges].entries()) {
          const all = Buffer.concat(sinks[k]!.parts);
          expect(all.equals(Buffer.concat(want))).toBe(true);
          kept.set(reader.backupId, all);
        }
        for (const { reader, result } of [inc, viaRanges]) {
          const bits = (b: Bitmap) =>
            b.toRanges().flatMap(([s0, l]) => Array.from({ length: l }, (_, k) => s0 + k));
          expect(bits((await reader.bitmap('changed'))!)).toEqual(expectChanged);
          expect(bits((await reader.bitmap('stored'))!)).toEqual(expectStored);
          expect(result.repeatedBlocks).toBe(expectRepeats);
          expect(reader.repeatedBlocks).toBe(expectRepeats);
          expect((await reader.bitmap('repeated'))!.count()).toBe(expectRepeats);
          expect(result.storedBlocks).toBe(expectStored.length - expectRepeats);
          if (digestsFrom === 'table') {
            // DGST section: 16 bytes per frame block plus its 20 bytes of framing.
            expect(reader.footer.sections.DGST!.length).toBe(
              16 * (expectStored.length - expectRepeats) + 20,
            );
            expect(reader.header.digestTable).toBe(true);
          } else {
            expect(reader.footer.sections.DGST).toBe(null);
            expect(reader.hasDigestTable).toBe(false);
            expect(await reader.digestTable()).toBe(null);
          }
          // Only without a table or a cached copy is old data read back, and then at most the
          // parent state's used non-zero blocks.
          // (The readers keep their last frame, so the second writer may find it there.)
          if (digestsFrom === 'frames')
            expect(result.parentBytesRead).toBeLessThanOrEqual(prevImage.length);
          else expect(result.parentBytesRead).toBe(0);
          expect(reader.storedBlocks).toBeLessThan(reader.digestedBlocks);
          for (const i of expectStored)
            expect(await reader.readBlock(i)).toEqual(block(image, i, bs));
          expect((await reader.verify()).ok).toBe(true);
        }
        expect(viaRanges.result.bytesRead).toBeLessThan(inc.result.bytesRead);
        if (digestsFrom === 'frames') expect(inc.result.parentBytesRead).toBeGreaterThan(0);
        chain.push(inc.reader);
        viaRangesChain.push(viaRanges.reader);
        // The digests of the whole state, gathered from the chain, are those of the image.
        for (const c of [chain, viaRangesChain]) {
          const whole = await wholeState(c);
          expect(whole.used.equals(used)).toBe(true);
          for (let i = 0; i < m; i++)
            expect(whole.zero.get(i)).toBe(used.get(i) && isZero(image, i));
          expect(whole.digests.equals(Buffer.concat(want))).toBe(true);
          const { state } = whole;
          const last = used.clone().andNot(whole.zero).toRanges().at(-1)!;
          await state.window(Math.floor((last[0] + last[1] - 1) / state.windowBlocks));
          const lastDigest = state.digestOf(last[0] + last[1] - 1)!;
          expect(Buffer.from(lastDigest).equals(want.at(-1)!)).toBe(true);
          await state.window(Math.floor(used.nextClear(0) / state.windowBlocks));
          expect(state.digestOf(used.nextClear(0))).toBe(null);
        }
      }
      expect(repeatsSeen).toBeGreaterThan(20);
    },
  );

  test('repeats: false writes the 2.1 layout, and holds the same state', async () => {
    const rand = prng(77);
    const n = 400;
    const image = randomBytesFrom(rand, n * bs);
    // Single copies of block 3, a copied range (consecutive targets) and a run of one block's
    // bytes (one target), both across windows of 64 blocks and frames of 8.
    for (let i = 10; i < 200; i += 10) block(image, i, bs).set(block(image, 3, bs).slice());
    image.copyWithin(200 * bs, 0, 100 * bs);
    for (let i = 301; i < n; i++) block(image, i, bs).set(block(image, 300, bs).slice());
    const used = new Bitmap(n).setAll();
    const expectRepeats = expectedRepeats(
      [...Array(n).keys()].map((i) => block(image, i, bs)),
      8,
    );
    expect(expectRepeats).toBeGreaterThan(180);
    const common = { source: memorySource(image), used, blockSize: bs, blocksPerFrame: 8 };
    const withRepeats = await toMemory({ ...common, windowBlocks: 64 });
    const without = await toMemory({ ...common, repeats: false });
    expect(withRepeats.reader.header.repeats).toBe(true);
    expect(without.reader.header.repeats).toBe(false);
    expect(new DataView(without.bytes.buffer).getUint32(0x10, true)).toBe(1);
    expect(without.result.repeatedBlocks).toBe(0);
    expect(withRepeats.result.repeatedBlocks).toBe(expectRepeats);
    expect(withRepeats.result.storedBlocks).toBe(n - expectRepeats);
    expect(withRepeats.bytes.length).toBeLessThan(without.bytes.length - 18 * bs);
    // Runs: the 99 blocks of one byte pattern past its frame and the copied range cost a few
    // entries, not one per block.
    const zero = withRepeats.reader.footer.sections.ZERO!;
    const fidx = withRepeats.reader.footer.sections.FIDX!;
    expect(fidx.offset - (zero.offset + zero.length)).toBeLessThan(20 + 4 * 40);
    for (const { reader } of [withRepeats, without]) {
      for (let i = 0; i < n; i++) expect(await reader.readBlock(i)).toEqual(block(image, i, bs));
      expect(await reader.verify()).toMatchObject({ ok: true, blocksChecked: reader.storedBlocks });
    }
    // Every block, read as runs window by window, and the digests of each window.
    const seen = new Uint8Array(n * bs);
    await withRepeats.reader.forEachStoredRun((first, bytes) => void seen.set(bytes, first * bs));
    expect(Buffer.compare(seen, image)).toBe(0);
    const want = Buffer.concat([...Array(n).keys()].map((i) => blockDigest(block(image, i, bs))));
    expect((await wholeState([withRepeats.reader])).digests.equals(want)).toBe(true);
    const withTable = await toMemory({ ...common, windowBlocks: 64, digestTable: true });
    expect(withTable.reader.footer.sections.DGST!.length).toBe(16 * (n - expectRepeats) + 20);
    expect((await wholeState([withTable.reader])).digests.equals(want)).toBe(true);
    const d30 = Buffer.from((await withTable.reader.digestOf(30))!);
    expect(d30.equals(blockDigest(block(image, 3, bs)))).toBe(true);
    const d350 = Buffer.from((await withTable.reader.digestOf(350))!);
    expect(d350.equals(blockDigest(block(image, 300, bs)))).toBe(true);
  });

  test('refuses chains that are out of order or contradict themselves', async () => {
    const rand = prng(11);
    const image = randomBytesFrom(rand, 32 * bs);
    const used = new Bitmap(32).setAll();
    const snap = await toMemory({ source: memorySource(image), used, blockSize: bs });
    const image1 = image.slice();
    block(image1, 1, bs).fill(5);
    const inc1 = await toMemory({
      source: memorySource(image1),
      used,
      blockSize: bs,
      chain: [snap.reader],
    });
    const inc2 = await toMemory({
      source: memorySource(image1),
      used,
      blockSize: bs,
      chain: [snap.reader, inc1.reader],
    });
    const broken: [BackupReader[], string, FormatReason][] = [
      [[inc1.reader], 'INVALID_ARGUMENT', 'incomplete-chain'],
      [[snap.reader, inc2.reader], 'CORRUPT', 'broken-chain'],
      [[], 'INVALID_ARGUMENT', 'empty-chain'],
    ];
    for (const [chain, code, reason] of broken) {
      await expect(
        toMemory({ source: memorySource(image1), used, blockSize: bs, chain }),
      ).rejects.toMatchObject({ code, reason });
    }
    // Two children of the snapshot sharing an id: one frees block 3, the other keeps it. An
    // incremental made from the second, put after the first, claims block 3 unchanged though
    // the first says it is unused: the chain contradicts itself.
    const id = new Uint8Array(16).fill(7);
    const freeing = await toMemory({
      source: memorySource(image),
      used: used.clone().clear(3),
      blockSize: bs,
      chain: [snap.reader],
      backupId: id,
    });
    const keeping = await toMemory({
      source: memorySource(image),
      used,
      blockSize: bs,
      chain: [snap.reader],
      backupId: id,
    });
    const child = await toMemory({
      source: memorySource(image1),
      used,
      blockSize: bs,
      chain: [snap.reader, keeping.reader],
    });
    await expect(wholeState([snap.reader, freeing.reader, child.reader])).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'inconsistent' satisfies FormatReason,
    });
  });

  test('refuses a parent of another geometry', async () => {
    const image = new Uint8Array(8192);
    const parent = await toMemory({
      source: memorySource(image),
      used: new Bitmap(16),
      blockSize: 512,
    });
    await expect(
      toMemory({
        source: memorySource(image),
        used: new Bitmap(8),
        blockSize: 1024,
        chain: [parent.reader],
      }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      reason: 'geometry-mismatch' satisfies FormatReason,
    });
  });
});

describe('files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'diskube-format-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes atomically, refuses to overwrite, leaves nothing on failure', async () => {
    const image = randomBytesFrom(prng(3), 64 * 1024);
    const used = new Bitmap(16).setAll();
    const path = join(dir, 'a.dkb');
    const progress: number[] = [];
    await writeSnapshot({
      source: memorySource(image),
      used,
      blockSize: 4096,
      out: path,
      onProgress: (p) => progress.push(p.bytesDone / p.bytesTotal),
    });
    expect(progress.at(-1)).toBe(1);
    const reader = await openBackup(path);
    expect(await reader.readBlock(5)).toEqual(image.subarray(5 * 4096, 6 * 4096));
    await reader.close();
    await expect(
      writeSnapshot({ source: memorySource(image), used, blockSize: 4096, out: path }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'exists' satisfies FormatReason });
    const failing = {
      size: image.length,
      read: async (offset: number) => {
        if (offset >= 0) throw new Error('disk gone');
      },
    };
    await expect(
      writeSnapshot({ source: failing, used, blockSize: 4096, out: join(dir, 'b.dkb') }),
    ).rejects.toThrow('disk gone');
    expect((await readdir(dir)).sort()).toEqual(['a.dkb']);
    const ac = new AbortController();
    ac.abort();
    await expect(
      writeSnapshot({
        source: memorySource(image),
        used,
        blockSize: 4096,
        out: join(dir, 'c.dkb'),
        signal: ac.signal,
      }),
    ).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(['a.dkb']);
    // A copy cut short is recognised as truncated.
    const bytes = await readFile(path);
    await writeFile(join(dir, 'cut.dkb'), bytes.subarray(0, bytes.length - 1));
    await expect(openBackup(join(dir, 'cut.dkb'))).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'truncated' satisfies FormatReason,
    });
  });
});
