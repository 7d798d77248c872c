import { memorySource } from '@diskube/core';
import { describe, expect, test } from 'vitest';
import { crc32c } from './crc32c.js';
import { blockDigest } from './digest.js';
import { BackupReader } from './reader.js';
import type { FormatReason } from './reasons.js';
import { BLOCK_INDEX_MAX_SLOTS, BlockIndex } from './repeats.js';
import { specExample } from './spec-example.js';

// SPEC.md §6.8. The worked example with a repeated block (block 3 repeats stored block 0) has its
// REPT section at 0x2B9: framing 0x2B9–0x2C8, payload `03 02 00` at 0x2C9 (a run at block 3 of
// one block, mode 0, repeating stored block 0), CRC at 0x2CC.
const REPT = 0x2b9;
const PAYLOAD = REPT + 16;

/** The example with its three REPT payload bytes replaced (the section CRC made to match). */
async function withPayload(a: number, b: number, c: number): Promise<Uint8Array> {
  const bytes = await specExample({ repeatedA: true });
  expect([...bytes.subarray(REPT, REPT + 4)]).toEqual([...Buffer.from('REPT')]);
  expect([...bytes.subarray(PAYLOAD, PAYLOAD + 3)]).toEqual([3, 2, 0]);
  bytes.set([a, b, c], PAYLOAD);
  const crc = crc32c(bytes.subarray(REPT, PAYLOAD + 3));
  new DataView(bytes.buffer).setUint32(PAYLOAD + 3, crc, true);
  return bytes;
}

describe('REPT section', () => {
  test('a repeated block reads as its target', async () => {
    const r = await BackupReader.fromSource(memorySource(await withPayload(3, 2, 0)));
    expect(r.storedBlocks).toBe(1);
    expect(r.repeatedBlocks).toBe(1);
    expect(r.info()).toMatchObject({ storedBlocks: 1, repeatedBlocks: 1, digestTable: false });
    const a = new Uint8Array(512).fill(0x41);
    expect(await r.readBlock(3)).toEqual(a);
    expect(Buffer.from((await r.digestOf(3))!).equals(blockDigest(a))).toBe(true);
    const runs: [number, number][] = [];
    await r.forEachStoredRun((first, bytes) => void runs.push([first, bytes.length]));
    expect(runs).toEqual([
      [0, 512],
      [3, 512],
    ]);
    expect(await r.verify()).toMatchObject({ ok: true, blocksChecked: 1 });
  });

  test.each([
    [[3, 2, 1], 'bad-offset', 0, 'a target that does not come before the block'],
    [[0, 2, 0], 'bad-offset', 0, 'the first block repeating itself'],
    [[2, 2, 0], 'inconsistent', 0, 'an unused block'],
    [[1, 2, 0], 'inconsistent', 0, 'a zero block'],
    [[3, 4, 0], 'out-of-range', 0, 'a run of two from block 3: block 4 is past the end'],
    [[2, 4, 0], 'inconsistent', 0, 'a run of two from block 2: unused'],
    [[4, 2, 0], 'out-of-range', 0, 'a block past the end'],
    [[3, 0, 0], 'bad-run', 0, 'a run of no blocks'],
    [[3, 1, 0], 'bad-run', 0, 'a run of no blocks, mode 1'],
    [[3, 0x82, 0], 'truncated', 3, 'a count cut short'],
    [[3, 2, 0x80], 'truncated', 3, 'a target cut short'],
  ] as const)('run %j is refused: %s at +%i (%s)', async (payload, reason, at, _what) => {
    await expect(
      BackupReader.fromSource(memorySource(await withPayload(payload[0], payload[1], payload[2]))),
    ).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: reason satisfies FormatReason,
      structure: 'repeated-block list',
      offset: PAYLOAD + at,
    });
  });

  test('with the REPEATS flag cleared, the REPT bytes break the layout: refused', async () => {
    const bytes = await specExample({ repeatedA: true });
    const view = new DataView(bytes.buffer);
    view.setUint32(0x10, 1, true); // incompat: NO_DIGEST_TABLE only
    view.setUint32(0x8b, crc32c(bytes.subarray(0, 0x8b)), true);
    await expect(BackupReader.fromSource(memorySource(bytes))).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-layout' satisfies FormatReason,
    });
  });
});

describe('BlockIndex', () => {
  /** 16 distinct bytes for each `k` (a digest stand-in; the index only compares bytes). */
  const digest = (k: number) => {
    const d = new Uint8Array(16);
    const v = new DataView(d.buffer);
    v.setUint32(0, Math.imul(k, 0x9e3779b1) >>> 0, true);
    v.setUint32(4, k, true);
    v.setUint32(8, Math.imul(k ^ 0x5bd1e995, 0x85ebca6b) >>> 0, true);
    return d;
  };

  test('finds what was added, growing as it fills', () => {
    const index = new BlockIndex();
    expect(index.slots).toBe(1024);
    for (let k = 0; k < 10_000; k++) index.add(digest(k), k);
    for (let k = 0; k < 10_000; k++) expect(index.find(digest(k))).toBe(k);
    expect(index.find(digest(10_000))).toBe(-1);
    expect(index.slots).toBe(32768);
  });

  test('stops growing at its cap, then forgets the oldest entries first', () => {
    const index = new BlockIndex();
    const n = BLOCK_INDEX_MAX_SLOTS + (BLOCK_INDEX_MAX_SLOTS >> 1);
    for (let k = 0; k < n; k++) index.add(digest(k), k);
    expect(index.slots).toBe(BLOCK_INDEX_MAX_SLOTS);
    let newest = 0;
    for (let k = n - 1000; k < n; k++) if (index.find(digest(k)) === k) newest++;
    expect(newest).toBeGreaterThan(990);
    let found = 0;
    for (let k = 0; k < n; k += 97) {
      const o = index.find(digest(k));
      expect(o === -1 || o === k).toBe(true);
      if (o === k) found++;
    }
    expect(found).toBeGreaterThan(0);
    expect(found).toBeLessThan(Math.ceil(n / 97));
  });
});
