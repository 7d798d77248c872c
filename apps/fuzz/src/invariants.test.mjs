import { describe, expect, it } from 'vitest';
import { mutant } from './mutate.mjs';
import { droppedBlocks } from './runner.mjs';

describe('mutants', () => {
  const original = new Uint8Array(8192).fill(0x11);

  it('are reproducible from seed and index, and stay inside the regions', () => {
    const a = mutant(original, [[4096, 512]], 5, 17);
    const b = mutant(original, [[4096, 512]], 5, 17);
    expect(a.bytes).toEqual(b.bytes);
    expect(a.description).toBe(b.description);
    for (let i = 0; i < 200; i++) {
      const { bytes, touched } = mutant(original, [[4096, 512]], 9, i);
      for (const [offset] of touched) expect(offset).toBeGreaterThanOrEqual(512);
      for (let k = 0; k < Math.min(4096, bytes.length); k++) expect(bytes[k]).toBe(0x11);
    }
  });

  it('always differ from the original (writing a byte it already held is no mutation)', () => {
    // All zeros: "byte = 0x00" and "u32 = 0" change nothing unless the mutator notices.
    const zeros = new Uint8Array(8192);
    for (let i = 0; i < 500; i++) {
      const { bytes } = mutant(zeros, [[4096, 512]], 3, i);
      const same = bytes.length === zeros.length && bytes.every((b) => b === 0);
      expect(same, `mutant ${i}`).toBe(false);
    }
  });
});

describe('the referenced-blocks invariant', () => {
  const referenced = {
    blockSize: 1024,
    blocks: /** @type {Array<[number, number]>} */ ([[10, 4]]),
    bitmaps: /** @type {Array<[number, number]>} */ ([[2048, 1024]]),
  };

  it('passes when the used map (in any block size) covers every referenced block', () => {
    expect(droppedBlocks(referenced, [[0, 1]], { blockSize: 4096, ranges: [[2, 2]] })).toBeNull();
  });

  it('names the blocks an accepted map dropped', () => {
    expect(droppedBlocks(referenced, [[0, 1]], { blockSize: 1024, ranges: [[10, 2]] })).toMatch(
      /^2 referenced blocks missing .*block 12 first/,
    );
  });

  it('does not judge a mutant that changed a block bitmap (the map may then rightly differ)', () => {
    expect(droppedBlocks(referenced, [[2050, 4]], { blockSize: 1024, ranges: [] })).toBeNull();
  });
});
