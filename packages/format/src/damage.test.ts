import { memorySource } from '@diskube/core';
import { describe, expect, test } from 'vitest';
import { BackupReader } from './reader.js';
import type { FormatReason } from './reasons.js';
import { FORMAT_REASONS } from './reasons.js';
import { memoryWritable, prng, randomBitmap, randomBytesFrom } from './test-support.js';
import { writeIncremental, writeSnapshot } from './writer.js';

// Every byte of a backup is covered by a checksum (header, frames, sections, footer), so any
// single-bit flip is found by opening or by verify, and any truncation by opening.

async function fixtures(digestTable: boolean) {
  const rand = prng(5);
  const bs = 512;
  const n = 64;
  const image = randomBytesFrom(rand, n * bs + 300);
  for (let i = 0; i < n; i += 3) image.fill(i, i * bs, i * bs + bs); // compressible
  for (let i = 1; i < n; i += 10) image.fill(0, i * bs, i * bs + bs);
  // Copies of block 3: repeats (REPT).
  for (let i = 14; i < n; i += 9) image.copyWithin(i * bs, 3 * bs, 4 * bs);
  const used = randomBitmap(rand, n, 0.6).set(3).set(14).set(23);
  const snapOut = memoryWritable();
  await writeSnapshot({
    source: memorySource(image),
    used,
    blockSize: bs,
    out: snapOut.stream,
    blocksPerFrame: 8,
    digestTable,
    meta: { sourceName: 'x', filesystem: 'ext4' },
  });
  const snapshot = snapOut.bytes();
  const parent = await BackupReader.fromSource(memorySource(snapshot));
  expect(parent.repeatedBlocks).toBeGreaterThan(1);
  const next = image.slice();
  for (let i = 0; i < n; i += 4) next[i * bs + 1]! ^= 0x55;
  // Blocks 16 and 44 become copies of the new block 8.
  for (const i of [16, 44]) next.copyWithin(i * bs, 8 * bs, 9 * bs);
  const used2 = used.clone().setRange(0, 10).clearRange(50, 10).set(16).set(44);
  const incOut = memoryWritable();
  await writeIncremental({
    source: memorySource(next),
    used: used2,
    blockSize: bs,
    out: incOut.stream,
    chain: [parent],
    blocksPerFrame: 8,
    compress: { type: 'none' },
    digestTable,
  });
  // Block 44 repeats block 8, which an earlier frame holds (16 shares block 8's frame: zstd's).
  expect((await BackupReader.fromSource(memorySource(incOut.bytes()))).repeatedBlocks).toBe(1);
  const suffix = digestTable ? ' with digest table' : '';
  return { [`snapshot${suffix}`]: snapshot, [`incremental${suffix}`]: incOut.bytes() };
}

async function damageFound(
  bytes: Uint8Array,
): Promise<{ at: 'open' | 'verify'; structure: string | undefined }> {
  let reader: BackupReader;
  try {
    reader = await BackupReader.fromSource(memorySource(bytes));
  } catch (error) {
    expect(error).toMatchObject({ code: 'CORRUPT' });
    expect((error as { structure?: string }).structure).toBeTypeOf('string');
    expect(FORMAT_REASONS).toContain((error as { reason?: string }).reason);
    return { at: 'open', structure: (error as { structure?: string }).structure };
  }
  const report = await reader.verify();
  expect(report.ok).toBe(false);
  for (const problem of report.problems) expect(FORMAT_REASONS).toContain(problem.reason);
  return { at: 'verify', structure: report.problems[0]?.structure };
}

describe('damage', async () => {
  const files = { ...(await fixtures(false)), ...(await fixtures(true)) };
  for (const [name, file] of Object.entries(files)) {
    test(`${name}: every single-bit flip is detected`, async () => {
      const reader = await BackupReader.fromSource(memorySource(file));
      expect((await reader.verify()).ok).toBe(true);
      const frames = await reader.frameIndex();
      const inFrame = (offset: number) =>
        frames.findIndex((f) => offset >= f.offset && offset < f.offset + f.storedLength);
      const tail = reader.footer.sections.TAIL;
      const inTail = (offset: number) =>
        tail !== null && offset >= tail.offset && offset < tail.offset + tail.length;
      let atVerify = 0;
      let expectedAtVerify = 0;
      // Every byte outside the frames; every 5th byte of frame data (the frame check is one CRC).
      for (let offset = 0; offset < file.length; offset += inFrame(offset) >= 0 ? 5 : 1) {
        if (inFrame(offset) >= 0 || inTail(offset)) expectedAtVerify++;
        const damaged = file.slice();
        damaged[offset]! ^= 1 << (offset % 8);
        const found = await damageFound(damaged);
        if (found.at === 'verify') {
          atVerify++;
          // Only frames and the tail are left to verify; it names the frame holding the offset.
          const k = inFrame(offset);
          expect(found.structure).toBe(k >= 0 ? `frame ${k}` : 'tail section');
        }
      }
      expect(atVerify).toBe(expectedAtVerify);
      expect(atVerify).toBeGreaterThan(100);
    }, 60_000);

    test(`${name}: every truncation is detected on open`, async () => {
      const reasons = new Set<string | undefined>();
      for (let length = 0; length < file.length; length++) {
        const error = await BackupReader.fromSource(memorySource(file.subarray(0, length))).then(
          () => null,
          (e: unknown) => e as { code?: string; reason?: string },
        );
        expect(error).toMatchObject({ code: 'CORRUPT' });
        reasons.add(error?.reason);
      }
      for (const reason of reasons) expect(FORMAT_REASONS).toContain(reason);
      // Appended bytes too.
      const longer = new Uint8Array(file.length + 1);
      longer.set(file);
      await expect(BackupReader.fromSource(memorySource(longer))).rejects.toMatchObject({
        code: 'CORRUPT',
      });
    }, 60_000);
  }

  test('reading a damaged frame is refused with the frame named', async () => {
    const file = files.snapshot!.slice();
    const reader0 = await BackupReader.fromSource(memorySource(file));
    const frame = (await reader0.frameIndex())[2]!;
    file[frame.offset + 3]! ^= 0x80;
    const reader = await BackupReader.fromSource(memorySource(file));
    await expect(reader.readFrame(2)).rejects.toMatchObject({
      code: 'CORRUPT',
      structure: 'frame 2',
      offset: frame.offset,
      reason: 'checksum' satisfies FormatReason,
    });
    await expect(reader.forEachStoredRun(() => {})).rejects.toMatchObject({
      code: 'CORRUPT',
      structure: 'frame 2',
    });
  });
});
