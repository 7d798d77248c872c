/**
 * Images from the shared DSL (@diskube/mkimage): NTFS inside a GPT disk, directories, real file
 * deletion through libntfs-3g (freed clusters keep their stale bytes), read through a
 * `sliceSource` of the partition as the CLI does.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memorySource, sliceSource } from '@diskube/core';
import { bitmapOfRanges } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { partcloneDomain, requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { NTFS_TOOLS, ntfs3gBitmap } from './images.test-support.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');

const KEEP = `
disk 80M gpt
  partition 60M ntfs cluster=4K label=win
    prefill random seed=7
    file /Windows/System32/config/SYSTEM 3M random seed=2
    files /Users/me/docs 400 small
    file /data/blob 6M random seed=1
  partition rest raw
    prefill random seed=9
`;

const DELETED = `${KEEP.trimEnd().replace('  partition rest raw', '    delete /data\n  partition rest raw')}\n`;

async function analyse(spec: string) {
  const { image, manifest } = await buildImage(spec);
  const part = manifest.partitions.find((p) => p.fs === 'ntfs')!;
  const disk = new Uint8Array(readFileSync(image));
  const source = sliceSource(memorySource(disk), part.offset, part.size);
  const result = await ntfsDriver.usedBlocks(source);
  // The oracles need the volume as a file of its own.
  const dir = mkdtempSync(join(tmpdir(), 'ntfs-mkimage-'));
  try {
    const path = join(dir, 'part.img');
    writeFileSync(path, disk.subarray(part.offset, part.offset + part.size));
    expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
    expect(
      result.used.equals(
        bitmapOfRanges(await partcloneDomain('ntfs', path), result.blockSize, result.blockCount),
      ),
    ).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { result, part };
}

describe.skipIf(!tools)('NTFS partitions built by @diskube/mkimage', () => {
  it('a GPT partition with directories: exact match, tail kept', async () => {
    const { result, part } = await analyse(KEEP);
    expect(result.facts.label).toBe('win');
    expect(result.warnings).toEqual([]);
    expect(result.tail.offset + result.tail.length).toBe(part.size);
    expect(result.tail.used).toBe(true);
    expect(result.used.count() * 4096).toBeGreaterThan(9 << 20);
  });

  it('deleting a directory frees exactly its clusters, stale bytes left behind', async () => {
    const kept = (await analyse(KEEP)).result;
    const deleted = (await analyse(DELETED)).result;
    expect(kept.used.count() - deleted.used.count()).toBe((6 << 20) / 4096);
  });
});
