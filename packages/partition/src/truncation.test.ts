// A disk image cut short inside a partition: refused as truncated (naming the partition and the
// missing bytes), or with `assumeUsedOnDoubt` kept whole with a warning. Images from the DSL.
import { readFile } from 'node:fs/promises';
import { memorySource } from '@diskube/core';
import { extDriver } from '@diskube/ext';
import { buildImage } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { mapDisk } from './disk-map.js';
import type { PartitionReason } from './reasons.js';
import { readPartitionTable } from './table.js';
import { errorOf, requireTool } from './test-support.js';

const MiB = 1 << 20;
const haveTools = requireTool('sfdisk', 'fdisk') && requireTool('mke2fs', 'e2fsprogs');

async function built(spec: string) {
  const { image, manifest } = await buildImage(spec);
  return { bytes: new Uint8Array(await readFile(image)), manifest };
}

describe.runIf(haveTools)('a disk image truncated inside a partition', () => {
  for (const scheme of ['gpt', 'mbr'] as const) {
    it(`${scheme}: refused as partition-truncated, naming the partition and the missing bytes`, async () => {
      const { bytes, manifest } = await built(`disk 24M ${scheme}
  partition 8M ext4
    file /a 1M random seed=1
  partition rest ext4
    file /b 1M random seed=2`);
      const second = manifest.partitions[1]!;
      const cut = second.offset + 3 * MiB;
      const truncated = bytes.subarray(0, cut);
      const missing = second.offset + second.size - cut;
      for (const attempt of [
        readPartitionTable(memorySource(truncated)),
        mapDisk(memorySource(truncated), [extDriver]),
      ]) {
        const error = await errorOf(attempt);
        expect(error.code).toBe('CORRUPT');
        expect(error.reason).toBe<PartitionReason>('partition-truncated');
        expect(error.message).toContain('partition 2 ');
        expect(error.message).toContain(`runs ${missing} bytes past the end`);
        // The offset names the table entry that describes partition 2.
        expect(error.offset).toBe(scheme === 'gpt' ? 1024 + 128 : 0x1be + 16);
      }

      // Full copy on doubt: what is there is kept whole, with the reason in the warning.
      const map = await mapDisk(memorySource(truncated), [extDriver], { assumeUsedOnDoubt: true });
      expect(map.used.count()).toBe(map.blockCount);
      expect(map.size).toBe(cut);
      expect(map.warnings.map((w) => [w.code, w.reason])).toEqual([
        ['assumed-used', 'partition-truncated'],
      ]);
    });
  }

  it('mbr: a cut inside a logical partition or before its EBR names it', async () => {
    const { bytes, manifest } = await built(`disk 24M mbr
  partition 4M ext4
  extended rest
    partition 6M raw
    partition rest raw`);
    const [, fifth, sixth] = manifest.partitions;
    let error = await errorOf(
      readPartitionTable(memorySource(bytes.subarray(0, sixth!.offset + MiB))),
    );
    expect(error.reason).toBe<PartitionReason>('partition-truncated');
    expect(error.message).toContain('logical partition 6 ');
    // Cut between logical 5 and the EBR of logical 6.
    error = await errorOf(
      readPartitionTable(memorySource(bytes.subarray(0, fifth!.offset + fifth!.size))),
    );
    expect(error.reason).toBe<PartitionReason>('partition-truncated');
    expect(error.message).toContain('EBR of logical partition 6');
  });

  it('an image cut exactly at the end of the last partition is not truncated', async () => {
    const { bytes, manifest } = await built(`disk 16M mbr
  partition 8M ext4`);
    const first = manifest.partitions[0]!;
    const table = await readPartitionTable(
      memorySource(bytes.subarray(0, first.offset + first.size)),
    );
    expect(table!.partitions).toHaveLength(1);
  });
});
