import { readFile } from 'node:fs/promises';
import { describeDriverConformance } from '@diskube/core/test';
import { fatDriver } from './driver.js';
import { fatSpec, image, skipImages } from './images.test-support.js';
import { FAT_REASONS, FAT_WARNINGS } from './reasons.js';

// Small real volumes of each FAT type, from mkfs.fat and mtools.
const SPECS = [
  fatSpec('1440K', 'fat=12'),
  fatSpec('4M', 'fat=16 cluster=512'),
  fatSpec('34M', 'fat=32 cluster=512', false),
];

if (!skipImages) {
  describeDriverConformance(fatDriver, {
    validImages: async () =>
      Promise.all(SPECS.map(async (spec) => new Uint8Array(await readFile(await image(spec))))),
    reasons: FAT_REASONS,
    warnings: FAT_WARNINGS,
  });
}
