// The conformance suite run on a toy filesystem that honours the whole contract: proof that the
// suite can be satisfied, and a run of its `additionalTests` hook. Layout of "toyfs": bytes 0–5
// "TOYFS\0", u32le block size at 8, dirty byte at 12; block 1 holds the used bitmap.
import { Bitmap } from '@diskube/bitmap';
import { expect, it } from 'vitest';
import type { FilesystemDriver, ProbeResult, UsedBlocks, UsedBlocksOptions } from './driver.js';
import { CorruptError, DirtyFilesystemError } from './errors.js';
import { type BlockSource, readBytes } from './source.js';
import { describeDriverConformance, randomBytes } from './test.js';

const MAGIC = [0x54, 0x4f, 0x59, 0x46, 0x53, 0];

async function header(source: BlockSource): Promise<{ blockSize: number; dirty: boolean }> {
  const h = await readBytes(source, 0, 16);
  if (MAGIC.some((b, i) => h[i] !== b)) {
    throw new CorruptError('not a toyfs', {
      structure: 'toyfs header',
      offset: 0,
      reason: 'bad-magic',
    });
  }
  const blockSize = new DataView(h.buffer, h.byteOffset).getUint32(8, true);
  if (blockSize !== 512 && blockSize !== 4096) {
    throw new CorruptError(`block size ${blockSize}`, {
      structure: 'toyfs header',
      offset: 8,
      reason: 'bad-block-size',
    });
  }
  return { blockSize, dirty: h[12] !== 0 };
}

const toyDriver: FilesystemDriver = {
  name: 'toyfs',
  async probe(source): Promise<ProbeResult | null> {
    try {
      return { filesystem: 'toyfs', blockSize: (await header(source)).blockSize };
    } catch {
      return null;
    }
  },
  async usedBlocks(source, options: UsedBlocksOptions = {}): Promise<UsedBlocks> {
    options.signal?.throwIfAborted();
    const { blockSize, dirty } = await header(source);
    const blockCount = Math.floor(source.size / blockSize);
    if (blockCount < 2) {
      // The header and the bitmap take two blocks (the suite's truncation test found this).
      throw new CorruptError(`${blockCount} blocks`, {
        structure: 'toyfs header',
        offset: 0,
        reason: 'too-small',
      });
    }
    const used = new Bitmap(blockCount);
    const warnings: UsedBlocks['warnings'] = [];
    const tail = {
      offset: blockCount * blockSize,
      length: source.size - blockCount * blockSize,
      used: false,
      reason: 'after the filesystem',
    };
    if (dirty) {
      if (!options.assumeUsedOnDoubt) {
        throw new DirtyFilesystemError('dirty', {
          structure: 'toyfs header',
          offset: 12,
          reason: 'dirty',
        });
      }
      warnings.push({ code: 'assumed-used', message: 'dirty: all kept', reason: 'dirty' });
      return {
        filesystem: 'toyfs',
        blockSize,
        blockCount,
        used: used.setAll(),
        tail: { ...tail, used: true },
        warnings,
        facts: {},
      };
    }
    const bits = await readBytes(source, blockSize, Math.ceil(blockCount / 8));
    options.signal?.throwIfAborted();
    used.setBytes(0, bits, blockCount);
    used.setRange(0, 2); // the header and the bitmap
    return { filesystem: 'toyfs', blockSize, blockCount, used, tail, warnings, facts: {} };
  },
};

/** A toyfs of `blocks` blocks with every third block used, and some bytes of tail. */
function toyImage(
  blocks: number,
  blockSize: number,
  dirty = false,
): { image: Uint8Array; used: Bitmap } {
  const image = randomBytes(blocks * blockSize + 100, blocks);
  image.set(MAGIC, 0);
  new DataView(image.buffer).setUint32(8, blockSize, true);
  image[12] = dirty ? 1 : 0;
  const used = new Bitmap(blocks);
  for (let b = 0; b < blocks; b += 3) used.set(b);
  used.setRange(0, 2);
  image.fill(0, blockSize, 2 * blockSize);
  for (let b = 0; b < blocks; b++) if (used.get(b)) image[blockSize + (b >> 3)]! |= 1 << (b & 7);
  return { image, used };
}

let extraRan = false;

describeDriverConformance(toyDriver, {
  oracleImages: async () =>
    [
      ['512-byte blocks', toyImage(300, 512)],
      ['4 KiB blocks', toyImage(64, 4096)],
    ].map(([name, t]) => {
      const { image, used } = t as ReturnType<typeof toyImage>;
      return { name: name as string, image, oracle: used, tailUsed: false };
    }),
  dirtyImages: async () => [
    { name: 'dirty byte set', image: toyImage(100, 512, true).image, reason: 'dirty' },
  ],
  reasons: ['bad-magic', 'bad-block-size', 'too-small', 'dirty'],
  warnings: ['assumed-used'],
  probeReadBudget: 16,
  corruptions: 16,
  additionalTests: () => {
    it('runs additionalTests inside the suite', () => {
      extraRan = true;
      expect(toyDriver.name).toBe('toyfs');
    });
  },
});

it('the additionalTests hook ran', () => {
  expect(extraRan).toBe(true);
});
