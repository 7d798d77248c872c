import { readFileSync } from 'node:fs';
import { DiskubeError, memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { containerImage, haveQemuImg, random, VARIANTS } from './images.test-support.js';
import { openContainer } from './index.js';
import { CONTAINER_REASONS } from './reasons.js';

// Seeded mutations of real qemu-img images: every outcome is a clean read or a typed error of
// the input's kind (CORRUPT, UNSUPPORTED, DIRTY) with a listed reason — never INVALID_ARGUMENT
// or IO (an error caused by the input's bytes is not the caller's mistake), never an untyped
// error. Bytes are changed where the metadata lives: the first 2 MiB and the last 4 KiB.

const hasQemu = haveQemuImg();
const MUTATIONS = 40;
const INPUT_CODES = ['CORRUPT', 'UNSUPPORTED', 'DIRTY'];

async function outcome(bytes: Uint8Array): Promise<string> {
  try {
    const { disk } = await openContainer(memorySource(bytes));
    const chunk = new Uint8Array(1 << 20);
    for (let at = 0; at < disk.size; at += 4 << 20) {
      await disk.read(at, chunk.subarray(0, Math.min(chunk.length, disk.size - at)));
    }
    for await (const _ of disk.unallocatedRanges()) {
      // walk only
    }
    return 'ok';
  } catch (error) {
    if (!DiskubeError.isInstance(error)) return `untyped: ${String(error)}`;
    return `${error.code}/${error.reason}`;
  }
}

describe.runIf(hasQemu)('mutated containers fail only as the input', () => {
  // vmdk-flat is a descriptor whose extent a memory source cannot resolve.
  it.each(VARIANTS.filter((v) => v !== 'vmdk-flat'))('%s', async (variant) => {
    const bytes = new Uint8Array(readFileSync(containerImage(variant)));
    const r = random(MUTATIONS * 64, variant.length * 7919);
    let k = 0;
    const next = () => (r[k++]! | (r[k++]! << 8) | (r[k++]! << 16)) >>> 0;
    const seen = new Map<string, number>();
    for (let m = 0; m < MUTATIONS; m++) {
      const patches: Array<[number, number]> = [];
      for (let n = 1 + (next() % 4); n > 0; n--) {
        const at =
          next() % 4 === 0
            ? bytes.length - 1 - (next() % 4096)
            : next() % Math.min(bytes.length, 2 << 20);
        patches.push([at, bytes[at]!]);
        bytes[at] = next() & 0xff;
      }
      const got = await outcome(bytes);
      for (const [at, old] of patches.reverse()) bytes[at] = old;
      seen.set(got, (seen.get(got) ?? 0) + 1);
      if (got === 'ok') continue;
      const [code, reason] = got.split('/');
      expect(INPUT_CODES, `${variant} mutation ${m}: ${got}`).toContain(code);
      expect(CONTAINER_REASONS, `${variant} mutation ${m}: ${got}`).toContain(reason);
    }
    // The unmutated image still opens (the patches were undone).
    expect(await outcome(bytes)).toBe('ok');
  });
});
