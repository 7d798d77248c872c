import { readFile } from 'node:fs/promises';
import { bitmapOfRanges, describeDriverConformance } from '@diskube/core/test';
import { partcloneDomain } from '@diskube/mkimage/testing';
import { fatDriver } from './driver.js';
import { fatSpec, image, skipImages, usedOf } from './images.test-support.js';
import { FAT_REASONS, FAT_WARNINGS } from './reasons.js';

// Small real volumes of each FAT type, from mkfs.fat and mtools.
const FAT12 = fatSpec('1440K', 'fat=12');
const FAT16 = fatSpec('4M', 'fat=16 cluster=512');
const FAT32 = fatSpec('34M', 'fat=32 cluster=512', false);

const bytes = async (spec: string) => new Uint8Array(await readFile(await image(spec)));

/**
 * partclone.fat -D as the oracle (FAT16 and FAT32: boot area, FATs, root directory, allocated
 * clusters), in the driver's blocks. Not FAT12: partclone 0.3.23 misdecodes 12-bit entries
 * (driver.test.ts checks FAT12 against fsck.fat and mtools instead).
 */
async function oracleImage(name: string, spec: string) {
  const path = await image(spec);
  const { blockSize, blockCount } = await usedOf(path);
  return {
    name,
    image: await bytes(spec),
    oracle: bitmapOfRanges(await partcloneDomain('fat', path), blockSize, blockCount),
    tailUsed: true,
  };
}

if (!skipImages) {
  describeDriverConformance(fatDriver, {
    oracleImages: async () => [
      await oracleImage('FAT16', FAT16),
      await oracleImage('FAT32', FAT32),
    ],
    validImages: async () => [await bytes(FAT12)],
    dirtyImages: async () => [
      { name: 'FAT16 dirty', image: await bytes(`${FAT16}    dirty\n`), reason: 'volume-dirty' },
      { name: 'FAT32 dirty', image: await bytes(`${FAT32}    dirty\n`), reason: 'volume-dirty' },
    ],
    reasons: FAT_REASONS,
    warnings: FAT_WARNINGS,
  });
}
