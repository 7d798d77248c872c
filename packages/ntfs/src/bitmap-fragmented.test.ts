/**
 * $Bitmap split over two runs far apart. mkntfs always writes it contiguously (and ntfsresize
 * relocates rather than fragments it), so the test moves the tail of $Bitmap to free clusters
 * elsewhere, updates the bits for the moved clusters and rewrites the runlist; ntfs-3g reading
 * the rewritten image (ntfscat) is the oracle.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memorySource } from '@diskube/core';
import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { attributesOf, dataExtent, writeRecord } from './hex.test-support.js';
import {
  buildNtfsImage,
  NTFS_TOOLS,
  type NtfsImageSpec,
  ntfs3gBitmap,
} from './images.test-support.js';
import { applyFixups } from './mft-record.js';
import { NtfsVolume } from './volume.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');

// 16 MiB in 512-byte clusters: 32767 clusters, a 4 KiB $Bitmap spanning 8 clusters.
const SPEC: NtfsImageSpec = {
  size: 16 << 20,
  cluster: 512,
  steps: [{ op: 'files', prefix: 'f', count: 50, sizes: [20, 7000] }],
};

describe.skipIf(!tools)('fragmented $Bitmap', () => {
  it('is read through both runs and matches ntfs-3g', async () => {
    const image = new Uint8Array(readFileSync(buildNtfsImage(SPEC)));
    const before = await ntfsDriver.usedBlocks(memorySource(image));
    const vol = await NtfsVolume.open(memorySource(image));
    const { clusterSize: cs, mftRecordSize: rs } = vol.boot;
    const file = await vol.openFile(6);
    const stream = vol.stream(file, 0x80)!;
    expect(stream.resident).toBe(false);
    if (stream.resident) return;
    expect(stream.runs).toHaveLength(1);
    const { lcn, length } = stream.runs[0]!;
    expect(length).toBeGreaterThanOrEqual(4);

    // Free clusters for the moved part, well away from the original run.
    const keep = 2;
    const moved = length - keep;
    let target = before.used.nextClear(Math.floor(before.blockCount / 2));
    while (before.used.countRange(target, moved) !== 0) target = before.used.nextClear(target + 1);
    expect(target).toBeGreaterThan(lcn + length);

    // The bitmap contents, with the moved clusters' bits updated, written through the new layout.
    const bits = new Uint8Array(length * cs);
    await vol.readStream(stream, 0, bits.subarray(0, stream.dataSize), '$Bitmap');
    for (let i = 0; i < moved; i++) {
      const from = lcn + keep + i;
      const to = target + i;
      bits[from >> 3] = bits[from >> 3]! & ~(1 << (from & 7));
      bits[to >> 3] = bits[to >> 3]! | (1 << (to & 7));
    }
    image.set(bits.subarray(0, keep * cs), lcn * cs);
    image.set(bits.subarray(keep * cs), target * cs);
    image.fill(0xee, (lcn + keep) * cs, (lcn + length) * cs); // stale bytes at the old place

    // Record 6 with the $DATA runlist [lcn, 2] + [target, length − 2].
    const at = vol.mftRuns[0]!.lcn * cs + 6 * rs;
    const rec = image.slice(at, at + rs);
    applyFixups(rec, 'record 6', at);
    const attrs = attributesOf(rec).map((a) =>
      a.type === 0x80 && (a.bytes[9] ?? 0) === 0
        ? dataExtent(
            a.bytes,
            0,
            length - 1,
            [
              { vcn: 0, lcn, length: keep },
              { vcn: keep, lcn: target, length: moved },
            ],
            a.instance,
            true,
          )
        : a.bytes,
    );
    image.set(writeRecord(rec, attrs, rs), at);

    const dir = mkdtempSync(join(tmpdir(), 'ntfs-bitmap-'));
    try {
      const path = join(dir, 'frag.img');
      writeFileSync(path, image);
      expect(execFileSync('ntfsinfo', ['-f', '-v', '-i', '6', path], { encoding: 'utf8' })).toMatch(
        /fragments: 2/,
      );
      const after = await ntfsDriver.usedBlocks(memorySource(image));
      expect(after.warnings).toEqual([]);
      expect(after.used.equals(ntfs3gBitmap(path, after.blockCount))).toBe(true);
      const expected = before.used
        .clone()
        .clearRange(lcn + keep, moved)
        .setRange(target, moved);
      expect(after.used.equals(expected)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
