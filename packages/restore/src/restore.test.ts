import { memorySource } from '@diskube/core';
import { BackupReader, crc32c, type FormatReason } from '@diskube/format';
import { describe, expect, test } from 'vitest';
import type { RestoreReason } from './reasons.js';
import { restoreImage } from './restore.js';
import { memoryTarget } from './target.js';
import { makeChain, prng } from './test-support.js';

/** A copy of backup `file` with the last digest table entry changed and its section CRC redone. */
function withLastDigestFlipped(file: Uint8Array, reader: BackupReader): Uint8Array {
  const loc = reader.footer.sections.DGST!;
  const damaged = file.slice();
  const crcAt = loc.offset + loc.length - 4;
  damaged[crcAt - 1]! ^= 1;
  new DataView(damaged.buffer).setUint32(crcAt, crc32c(damaged.subarray(loc.offset, crcAt)), true);
  return damaged;
}

// Windows of 64 blocks: every backup's bitmaps, digests and frames cross window boundaries.
describe.each([
  [undefined, true],
  [64, true],
  [undefined, false],
  [64, false],
])('restore (windows of %s blocks, digest tables: %s)', async (windowBlocks, digestTable) => {
  const bs = 512;
  const n = 300;
  const windows = windowBlocks ? { windowBlocks } : {};
  const { states, readers, files } = await makeChain({
    digestTable,
    seed: 42,
    blockSize: bs,
    blockCount: n,
    tail: 100,
    steps: 5,
    ...windows,
  });

  test('the chain exercises every kind of change', async () => {
    for (const r of readers.slice(1)) {
      const info = r.info();
      expect(info.freedBlocks).toBeGreaterThan(0);
      expect(info.changedBlocks! - info.freedBlocks!).toBeGreaterThan(r.storedBlocks); // some became zero
      expect(r.storedBlocks).toBeGreaterThan(0);
      // Held blocks: in the frames, or repeats of a block stored earlier in the same file.
      expect((await r.bitmap('stored'))!.count()).toBe(r.storedBlocks + r.repeatedBlocks);
      expect(r.repeatedBlocks).toBeGreaterThan(0);
      // Format 2: an incremental's digest table covers its stored blocks only.
      if (digestTable) expect(r.footer.sections.DGST!.length).toBe(16 * r.storedBlocks + 20);
      else expect(r.footer.sections.DGST).toBe(null);
      expect(r.storedBlocks).toBeLessThan(r.digestedBlocks);
    }
  });

  for (let k = 0; k < states.length; k++) {
    test(`point ${k}: both strategies, sparse and zeroUnused, give the expected bytes`, async () => {
      const chain = readers.slice(0, k + 1);
      const want = states[k]!.expected;
      const results = [];
      for (const strategy of ['reverse', 'patch'] as const) {
        for (const zeroUnused of [false, true]) {
          const target = memoryTarget(want.length);
          if (zeroUnused) target.bytes.fill(0xee); // a dirty device: every byte must be overwritten
          const result = await restoreImage({
            chain,
            target,
            strategy,
            zeroUnused,
            recordWrites: true,
          });
          expect(Buffer.compare(target.bytes, want)).toBe(0);
          results.push({ strategy, zeroUnused, result });
        }
      }
      const newest = chain.at(-1)!;
      const digested = (await newest.bitmap('digested'))!;
      for (const { strategy, zeroUnused, result } of results) {
        const counts = result.writeCounts!;
        if (strategy === 'reverse') {
          // Each used non-zero block exactly once; with zeroUnused every other block once too.
          for (let i = 0; i < n; i++) {
            const data = digested.get(i);
            expect(counts[i], `block ${i}`).toBe(data || zeroUnused ? 1 : 0);
          }
          expect(result.dataBlocksWritten).toBe(newest.digestedBlocks);
        }
      }
      const reverse = results.find((r) => r.strategy === 'reverse' && !r.zeroUnused)!.result;
      const patch = results.find((r) => r.strategy === 'patch' && !r.zeroUnused)!.result;
      expect(reverse.bytesWritten).toBeLessThanOrEqual(patch.bytesWritten);
      expect(reverse.bytesRead).toBeLessThanOrEqual(patch.bytesRead);
      if (k >= 2) expect(reverse.bytesWritten).toBeLessThan(patch.bytesWritten);
    });
  }

  test('a target over a backing file: used zero blocks written, unused ones left alone', async () => {
    for (const k of [0, 3, 5]) {
      const chain = readers.slice(0, k + 1);
      const { expected: want, used } = states[k]!;
      // What the backing file shows under every unwritten byte.
      const target = { ...memoryTarget(want.length), needsZeroBlocks: true };
      target.bytes.fill(0xbb);
      const result = await restoreImage({ chain, target, recordWrites: true });
      const counts = result.writeCounts!;
      for (let i = 0; i < n; i++) {
        const block = target.bytes.subarray(i * bs, (i + 1) * bs);
        if (used.get(i)) {
          expect(counts[i], `block ${i}`).toBe(1);
          expect(Buffer.compare(block, want.subarray(i * bs, (i + 1) * bs))).toBe(0);
        } else {
          expect(counts[i], `block ${i}`).toBe(0);
          expect(block.every((b) => b === 0xbb)).toBe(true);
        }
      }
      // The incrementals turn some used blocks into zeros (the snapshot's data is random).
      if (k > 0) expect(result.zeroBlocksWritten).toBeGreaterThan(0);
      await expect(restoreImage({ chain, target, strategy: 'patch' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        reason: 'needs-reverse',
      });
    }
  });

  test('damage at any offset of a backup in the chain: refused, or (reverse, frame not needed) exact', async () => {
    const victim = 2;
    const file = files[victim]!;
    const want = states[4]!.expected;
    let refused = 0;
    for (
      let offset = 0;
      offset < file.length;
      offset += Math.max(1, Math.floor(file.length / 400))
    ) {
      const damaged = file.slice();
      damaged[offset]! ^= 1 << (offset % 8);
      let reader: BackupReader;
      try {
        reader = await BackupReader.fromSource(memorySource(damaged), 'damaged.dkb', windows);
      } catch (error) {
        expect(error).toMatchObject({ code: 'CORRUPT' });
        refused++;
        continue;
      }
      const chain = [...readers.slice(0, victim), reader, ...readers.slice(victim + 1, 5)];
      const inFrame = (await reader.frameIndex()).some(
        (f) => offset >= f.offset && offset < f.offset + f.storedLength,
      );
      for (const strategy of ['patch', 'reverse'] as const) {
        const target = memoryTarget(want.length);
        try {
          await restoreImage({ chain, target, strategy });
          // Only data this restore does not need can be damaged: patch reads every frame.
          expect(strategy === 'patch' && inFrame).toBe(false);
          expect(Buffer.compare(target.bytes, want)).toBe(0);
        } catch (error) {
          expect(error).toMatchObject({ code: 'CORRUPT' });
          refused++;
        }
      }
    }
    expect(refused).toBeGreaterThan(100);
  });

  // Only with tables (without, the frames' CRCs stand for the digests; the format's damage tests
  // flip every bit of such files).
  if (digestTable)
    test("each stored block is checked against its own backup's digest entry", async () => {
      const want = states[5]!.expected;
      for (const k of [0, 3, 5]) {
        const r = readers[k]!;
        // The last entry belongs to the last block in the frames, which every restore of point 5
        // needs (a later backup does not restore over it) unless a later backup changed it, and
        // to the blocks that repeat it.
        const framed = (await r.bitmap('stored'))!.andNot((await r.bitmap('repeated'))!);
        const last = framed.toRanges().at(-1)!;
        const block = last[0] + last[1] - 1;
        const holders = [block];
        for (let w = 0; w < r.windowCount; w++) {
          const win = await r.window(w);
          let rank = 0;
          for (const [s0, len] of win.repeated.runs())
            for (let j = s0; j < s0 + len; j++, rank++)
              if (win.repeatTargets[rank] === r.storedBlocks - 1) holders.push(win.start + j);
        }
        const later = readers.slice(k + 1);
        const neededBy: number[] = [];
        for (const i of holders) {
          let changedLater = false;
          for (const b of later) if ((await b.bitmap('changed'))!.get(i)) changedLater = true;
          if (!changedLater) neededBy.push(i);
        }
        const needed = neededBy.length > 0;
        const damaged = await BackupReader.fromSource(
          memorySource(withLastDigestFlipped(files[k]!, r)),
          r.path,
          windows,
        );
        const chain = readers.map((b, j) => (j === k ? damaged : b));
        for (const strategy of ['reverse', 'patch'] as const) {
          const attempt = restoreImage({
            chain,
            target: memoryTarget(want.length),
            strategy,
          });
          if (needed || strategy === 'patch') {
            const error = await attempt.then(
              () => null,
              (e: unknown) => e,
            );
            expect(error).toMatchObject({
              code: 'CORRUPT',
              reason: 'digest' satisfies RestoreReason | FormatReason,
            });
            // The block itself, or a block that repeats it.
            const named = Number(
              /^block (\d+)$/.exec((error as { structure: string }).structure)![1],
            );
            expect(strategy === 'patch' ? holders : neededBy).toContain(named);
          } else await attempt;
        }
        const target = memoryTarget(want.length);
        await restoreImage({ chain, target, verifyDigests: false });
        expect(Buffer.compare(target.bytes, want)).toBe(0);
      }
    });

  test('a target that completes writes out of order still gets the right bytes', async () => {
    const want = states[5]!.expected;
    const rand = prng(5);
    for (const strategy of ['reverse', 'patch'] as const) {
      const bytes = new Uint8Array(want.length);
      // Each write lands after a random delay, so writes in flight finish in any order.
      const target = {
        size: want.length,
        zeroed: true,
        write: (offset: number, data: Uint8Array) => {
          const copy = data.slice();
          return new Promise<void>((resolve) =>
            setTimeout(() => {
              bytes.set(copy, offset);
              resolve();
            }, rand() * 3),
          );
        },
        finish: async () => {},
        abort: async () => {},
      };
      await restoreImage({ chain: readers, target, strategy });
      expect(Buffer.compare(bytes, want)).toBe(0);
    }
  });

  test('clustered churn: reverse reads less than patch and both are exact', async () => {
    const c = await makeChain({
      seed: 8,
      blockSize: 512,
      blockCount: 400,
      tail: 0,
      steps: 5,
      churn: 'clustered',
      blocksPerFrame: 8,
    });
    const want = c.states[5]!.expected;
    const results = [];
    for (const strategy of ['reverse', 'patch'] as const) {
      const target = memoryTarget(want.length);
      results.push(await restoreImage({ chain: c.readers, target, strategy }));
      expect(Buffer.compare(target.bytes, want)).toBe(0);
    }
    expect(results[0]!.bytesRead).toBeLessThan(results[1]!.bytesRead);
    expect(results[0]!.bytesWritten).toBeLessThan(results[1]!.bytesWritten);
  });

  test('progress reaches its total', async () => {
    for (const strategy of ['reverse', 'patch'] as const) {
      for (const zeroUnused of [false, true]) {
        let last = { bytesDone: 0, bytesTotal: -1 };
        await restoreImage({
          chain: readers,
          target: memoryTarget(states[0]!.image.length),
          strategy,
          zeroUnused,
          onProgress: (p) => (last = p),
        });
        expect(last.bytesDone).toBe(last.bytesTotal);
      }
    }
  });

  test('refuses a broken chain and unsuitable targets', async () => {
    const size = states[0]!.image.length;
    // A backup not made from the one before it: the files disagree.
    await expect(
      restoreImage({ chain: [readers[0]!, readers[2]!], target: memoryTarget(size) }),
    ).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'broken-chain' satisfies RestoreReason | FormatReason,
    });
    // The caller left the snapshot out, or passed nothing.
    await expect(
      restoreImage({ chain: readers.slice(1), target: memoryTarget(size) }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      reason: 'incomplete-chain' satisfies RestoreReason | FormatReason,
    });
    await expect(restoreImage({ chain: [], target: memoryTarget(size) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      reason: 'empty-chain' satisfies RestoreReason | FormatReason,
    });
    await expect(
      restoreImage({ chain: readers, target: memoryTarget(size - 1) }),
    ).rejects.toMatchObject({ reason: 'target-size' satisfies RestoreReason | FormatReason });
    await expect(
      restoreImage({ chain: readers, target: { ...memoryTarget(size), zeroed: false } }),
    ).rejects.toMatchObject({ reason: 'needs-zero-unused' satisfies RestoreReason | FormatReason });
  });
});
