import { readFileSync } from 'node:fs';
import { type BlockSource, memorySource } from '@diskube/core';
import { bitmapOfRanges } from '@diskube/core/test';
import { partcloneDomain } from '@diskube/mkimage/testing';
import { expect } from 'vitest';
import { ntfsDriver } from './driver.js';
import { buildNtfsImage, type NtfsImageSpec, ntfs3gBitmap } from './images.test-support.js';

export function load(spec: NtfsImageSpec): {
  path: string;
  image: Uint8Array;
  source: BlockSource;
} {
  const path = buildNtfsImage(spec);
  const image = new Uint8Array(readFileSync(path));
  return { path, image, source: memorySource(image) };
}

/**
 * Build the image for `spec` and check the driver against the oracles: the used set equals
 * ntfs-3g's $Bitmap (ntfscat) and partclone's domain log exactly, and the only other bytes kept
 * are the tail, which holds the backup boot sector.
 */
export async function expectMatchesOracles(spec: NtfsImageSpec) {
  const { path, image, source } = load(spec);
  const probe = await ntfsDriver.probe(source);
  expect(probe).toEqual({
    filesystem: 'ntfs',
    blockSize: spec.cluster,
    ...(spec.label ? { label: spec.label } : {}),
  });
  const result = await ntfsDriver.usedBlocks(source);
  const sector = spec.sectorSize ?? 512;
  // mkntfs keeps the last sector for the backup boot sector: clusters = floor((size − 1 sector) / cluster).
  expect(result.blockSize).toBe(spec.cluster);
  expect(result.blockCount).toBe(Math.floor((spec.size - sector) / spec.cluster));
  expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
  expect(
    result.used.equals(
      bitmapOfRanges(await partcloneDomain('ntfs', path), result.blockSize, result.blockCount),
    ),
  ).toBe(true);
  expect(result.warnings).toEqual([]);
  // The only bytes kept beyond the used clusters: the tail, which holds the backup boot sector.
  expect(result.tail).toMatchObject({
    offset: result.blockCount * spec.cluster,
    length: spec.size - result.blockCount * spec.cluster,
    used: true,
  });
  expect(result.tail.length).toBeGreaterThanOrEqual(sector);
  expect(result.tail.length).toBeLessThanOrEqual(spec.cluster + sector);
  const backup = image.subarray(spec.size - sector, spec.size - sector + 512);
  expect(backup).toEqual(image.subarray(0, 512));
  expect(result.facts).toMatchObject({
    clusterSize: spec.cluster,
    version: '3.1',
    logFile: 'empty',
    hiberfile: 'absent',
  });
  return result;
}
