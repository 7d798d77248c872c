// Shared specs and image checks for the end-to-end tests.
import { open } from 'node:fs/promises';
import type { Manifest } from '@diskube/mkimage';
import { expectPartitionIntact } from '@diskube/mkimage/testing';
import { expect } from 'vitest';

/**
 * Checks a restored disk partition by partition, through mkimage's filesystem registry: fsck
 * clean and every manifest file identical. Returns how many files were compared.
 */
export async function expectFilesystemsIntact(
  image: string,
  manifest: Manifest,
  dir: string,
): Promise<number> {
  let checked = 0;
  for (const p of manifest.partitions) checked += await expectPartitionIntact(image, p, dir);
  return checked;
}

/**
 * Compares a restored image with its original: equal inside the used ranges, all zero outside.
 * Returns how many non-zero bytes of the original lay outside the used ranges (the stale data a
 * used-block backup must drop), so a test can assert that there was something to drop.
 */
export async function compareMasked(
  original: string,
  restored: string,
  ranges: Array<[number, number]>,
): Promise<{ droppedNonZeroBytes: number }> {
  const a = await open(original, 'r');
  const b = await open(restored, 'r');
  try {
    const size = (await a.stat()).size;
    expect((await b.stat()).size).toBe(size);
    const chunk = 1 << 20;
    const bufA = Buffer.alloc(chunk);
    const bufB = Buffer.alloc(chunk);
    let r = 0;
    let dropped = 0;
    for (let at = 0; at < size; at += chunk) {
      const n = Math.min(chunk, size - at);
      await a.read(bufA, 0, n, at);
      await b.read(bufB, 0, n, at);
      for (let i = 0; i < n; ) {
        const pos = at + i;
        while (r < ranges.length && ranges[r]![0] + ranges[r]![1] <= pos) r++;
        const range = ranges[r];
        const inUsed = range !== undefined && range[0] <= pos;
        const end = Math.min(n, (inUsed ? range[0] + range[1] : (range?.[0] ?? size)) - at);
        if (inUsed) {
          if (!bufA.subarray(i, end).equals(bufB.subarray(i, end))) {
            throw new Error(`restored image differs inside used range at byte ${pos}`);
          }
        } else {
          for (let k = i; k < end; k++) {
            if (bufB[k] !== 0)
              throw new Error(`restored image has data outside used ranges at byte ${at + k}`);
            if (bufA[k] !== 0) dropped++;
          }
        }
        i = end;
      }
    }
    return { droppedNonZeroBytes: dropped };
  } finally {
    await a.close();
    await b.close();
  }
}
