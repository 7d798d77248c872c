import { openFileSource } from '@diskube/core/node';
import { buildImage } from '@diskube/mkimage';
import { mapDisk } from '@diskube/partition';
import { describe, expect, it } from 'vitest';
import { fatDriver } from './driver.js';
import { CONTENT, fatSpec, image, skipImages } from './images.test-support.js';

async function map(path: string) {
  const source = await openFileSource(path);
  try {
    return await mapDisk(source, [fatDriver]);
  } finally {
    await source.close();
  }
}

// A bare FAT volume's boot sector ends in 0x55AA, like an MBR; mapDisk asks the drivers about
// the whole disk first, so with this driver registered it is a filesystem, not an empty MBR.
describe.skipIf(skipImages)('fat through mapDisk', () => {
  it.each([
    ['FAT12', fatSpec('1440K', 'fat=12'), 'fat12'],
    ['FAT16', fatSpec('32M', 'fat=16 cluster=2K label=DATA'), 'fat16'],
    ['FAT32', fatSpec('40M', 'fat=32 cluster=512'), 'fat32'],
  ])('a bare %s volume is one filesystem, not a partition table', async (_what, spec, name) => {
    const m = await map(await image(spec));
    expect(m.table).toBeNull();
    expect(m.parts).toHaveLength(1);
    expect(m.parts[0]).toMatchObject({ partition: null, kind: 'filesystem', content: name });
    expect(m.used.count() * m.blockSize).toBeLessThan(m.size / 2);
  });

  it('finds an EFI system partition (FAT32) in a GPT disk and a FAT16 one in an MBR disk', async () => {
    const gpt = await buildImage(
      `disk 64M gpt\n  partition 40M fat fat=32 cluster=512 type=efi\n${CONTENT}\n  partition rest raw\n`,
    );
    const g = await map(gpt.image);
    expect(g.table?.scheme).toBe('gpt');
    const esp = g.parts.find((p) => p.kind === 'filesystem');
    expect(esp).toMatchObject({ content: 'fat32', offset: 1 << 20 });
    expect(esp!.usedBytes).toBeLessThan(esp!.size / 2);

    const mbr = await buildImage(`disk 40M mbr\n  partition 20M fat fat=16\n${CONTENT}\n`);
    const m = await map(mbr.image);
    expect(m.table?.scheme).toBe('mbr');
    expect(m.parts.find((p) => p.kind === 'filesystem')).toMatchObject({ content: 'fat16' });
  });
});
