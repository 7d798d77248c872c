import { readFile } from 'node:fs/promises';
import { type DiskubeError, memorySource, type UsedBlocks } from '@diskube/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fatDriver } from './driver.js';
import { fatSpec, image, skipImages, usedOf } from './images.test-support.js';

// Real images from mkfs.fat + mtools, patched byte by byte: each patch must end in the
// documented code and reason (or warning), never in a smaller used map.

const FAT16 = fatSpec('32M', 'fat=16 cluster=2K label=DATA');
const FAT32 = fatSpec('40M', 'fat=32 cluster=512');

interface Volume {
  bytes: Buffer;
  clean: UsedBlocks;
  /** Byte offsets of FAT copy 1 and 2, bytes per FAT entry, a free and an allocated cluster. */
  fat: [number, number];
  width: number;
  freeCluster: number;
  usedCluster: number;
}

async function load(spec: string): Promise<Volume> {
  const path = await image(spec);
  const bytes = await readFile(path);
  const clean = await usedOf(path);
  const bps = bytes.readUInt16LE(0x0b);
  const reserved = bytes.readUInt16LE(0x0e);
  const fatSectors = bytes.readUInt16LE(0x16) || bytes.readUInt32LE(0x24);
  const fat1 = reserved * bps;
  const width = clean.filesystem === 'fat32' ? 4 : 2;
  const first = (clean.facts.dataStart as number) / clean.blockSize;
  // The last cluster is free (the volumes are far from full); cluster 3 holds data.
  const clusters = clean.facts.clusters as number;
  expect(clean.used.get(first + clusters - 1)).toBe(false);
  return {
    bytes,
    clean,
    fat: [fat1, fat1 + fatSectors * bps],
    width,
    freeCluster: clusters + 1,
    usedCluster: 3,
  };
}

const patched = (v: Volume, patch: (b: Buffer) => void): Buffer => {
  const copy = Buffer.from(v.bytes);
  patch(copy);
  return copy;
};

const writeEntry = (v: Volume, b: Buffer, copy: 0 | 1, cluster: number, value: number) => {
  const at = v.fat[copy] + cluster * v.width;
  if (v.width === 2) b.writeUInt16LE(value, at);
  else b.writeUInt32LE(value, at);
};

async function rejection(bytes: Uint8Array): Promise<DiskubeError> {
  try {
    await fatDriver.usedBlocks(memorySource(bytes));
  } catch (e) {
    return e as DiskubeError;
  }
  throw new Error('expected usedBlocks to reject');
}

describe.skipIf(skipImages)('fat usedBlocks on patched real volumes', () => {
  const vols: Record<string, Volume> = {};
  beforeAll(async () => {
    vols.fat16 = await load(FAT16);
    vols.fat32 = await load(FAT32);
  });

  describe.each(['fat16', 'fat32'])('%s', (name) => {
    it('a volume left dirty by the DSL is DIRTY volume-dirty, all used under assumeUsedOnDoubt', async () => {
      const path = await image(`${name === 'fat16' ? FAT16 : FAT32}    dirty\n`);
      await expect(usedOf(path)).rejects.toMatchObject({ code: 'DIRTY', reason: 'volume-dirty' });
      const all = await usedOf(path, { assumeUsedOnDoubt: true });
      expect(all.used.count()).toBe(all.blockCount);
      expect(all.tail.used).toBe(true);
      expect(all.warnings).toEqual([
        expect.objectContaining({ code: 'assumed-used', reason: 'volume-dirty' }),
      ]);
    });

    it('a clear clean-shutdown bit in FAT[1] is DIRTY not-clean', async () => {
      const v = vols[name]!;
      // Bit 15 of the FAT16 entry, bit 27 of the FAT32 one: in the entry's last byte.
      const bit = v.width === 2 ? 0x80 : 0x08;
      const bytes = patched(v, (b) => {
        const at = v.fat[1] + 2 * v.width - 1;
        b[at]! &= ~bit;
      });
      expect(await rejection(bytes)).toMatchObject({ code: 'DIRTY', reason: 'not-clean' });
      const all = await fatDriver.usedBlocks(memorySource(bytes), { assumeUsedOnDoubt: true });
      expect(all.used.count()).toBe(all.blockCount);
    });

    it('a clear hard-error bit in FAT[1] is a warning, the map still exact', async () => {
      const v = vols[name]!;
      const bit = v.width === 2 ? 0x40 : 0x04;
      const bytes = patched(v, (b) => {
        b[v.fat[0] + 2 * v.width - 1]! &= ~bit;
      });
      const r = await fatDriver.usedBlocks(memorySource(bytes));
      expect(r.warnings.map((w) => w.code)).toEqual(['hard-errors']);
      expect(r.used.equals(v.clean.used)).toBe(true);
    });

    it('FAT copies that differ: a warning and the union of both', async () => {
      const v = vols[name]!;
      const end = v.width === 2 ? 0xffff : 0x0fffffff;
      const bytes = patched(v, (b) => writeEntry(v, b, 1, v.freeCluster, end));
      const r = await fatDriver.usedBlocks(memorySource(bytes));
      expect(r.warnings).toEqual([
        expect.objectContaining({ code: 'fat-copies-differ', offset: v.fat[1] }),
      ]);
      const block = r.blockCount - 1; // the last cluster, one block per cluster here
      expect(r.used.get(block)).toBe(true);
      expect(r.used.count()).toBe(v.clean.used.count() + 1);
    });

    it('crossCheck keeps a cluster a chain reaches but the FAT calls free, and names its file', async () => {
      const v = vols[name]!;
      // The first link of a multi-cluster chain: free the cluster it links to, in both FATs.
      const read = (b: Buffer, c: number) =>
        (v.width === 2 ? b.readUInt16LE(v.fat[0] + c * 2) : b.readUInt32LE(v.fat[0] + c * 4)) &
        0x0fffffff;
      let from = 3;
      while (!(read(v.bytes, from) >= 2 && read(v.bytes, from) < v.freeCluster)) from++;
      const next = read(v.bytes, from);
      const bytes = patched(v, (b) => {
        writeEntry(v, b, 0, next, 0);
        writeEntry(v, b, 1, next, 0);
      });
      const first = (v.clean.facts.dataStart as number) / v.clean.blockSize;
      const block =
        first + (next - 2) * ((v.clean.facts.clusterSize as number) / v.clean.blockSize);
      const plain = await fatDriver.usedBlocks(memorySource(bytes));
      expect(plain.used.get(block)).toBe(false);
      const walked = await fatDriver.usedBlocks(memorySource(bytes), { crossCheck: true });
      expect(walked.used.get(block)).toBe(true);
      expect(walked.crossCheck).toMatchObject({ missingBlocks: 1, missing: [{ block, count: 1 }] });
      expect(walked.crossCheck!.missing[0]!.owner).toMatch(/^\/[A-Z]/);
      expect(walked.warnings).toEqual([
        expect.objectContaining({ code: 'referenced-free', offset: block * walked.blockSize }),
      ]);
    });

    it('crossCheck: a directory entry starting outside the volume is CORRUPT bad-start-cluster', async () => {
      const v = vols[name]!;
      // The first entry of the root directory that is a file or directory: /docs.
      const bs = v.bytes;
      const bps = bs.readUInt16LE(0x0b);
      const rootAt =
        v.width === 2
          ? v.fat[0] + bs.readUInt8(0x10) * bs.readUInt16LE(0x16) * bps
          : (v.clean.facts.dataStart as number) +
            (bs.readUInt32LE(0x2c) - 2) * (v.clean.facts.clusterSize as number);
      let at = rootAt;
      while (bs[at] === 0xe5 || (bs[at + 0x0b]! & 0x0f) === 0x0f || bs[at + 0x0b]! & 0x08) at += 32;
      // DIR_FstClusLO (and on FAT32 DIR_FstClusHI) past the last cluster.
      const bytes = patched(v, (b) => {
        b.writeUInt16LE(0xfff0, at + 0x1a);
        if (v.width === 4) b.writeUInt16LE(0x0fff, at + 0x14);
      });
      await expect(
        fatDriver.usedBlocks(memorySource(bytes), { crossCheck: true }),
      ).rejects.toMatchObject({ code: 'CORRUPT', reason: 'bad-start-cluster', offset: at });
    });

    it('a bad-cluster mark keeps the cluster', async () => {
      const v = vols[name]!;
      const bad = v.width === 2 ? 0xfff7 : 0x0ffffff7;
      const bytes = patched(v, (b) => {
        writeEntry(v, b, 0, v.freeCluster, bad);
        writeEntry(v, b, 1, v.freeCluster, bad);
      });
      const r = await fatDriver.usedBlocks(memorySource(bytes));
      expect(r.warnings).toEqual([]);
      expect(r.used.get(r.blockCount - 1)).toBe(true);
    });

    it.each([
      ['cluster 1', () => 1],
      ['past the last cluster', (v: Volume) => v.freeCluster + 1],
    ])('a link to %s is CORRUPT bad-cluster-link', async (_what, target) => {
      const v = vols[name]!;
      const bytes = patched(v, (b) => writeEntry(v, b, 0, v.usedCluster, target(v)));
      expect(await rejection(bytes)).toMatchObject({
        code: 'CORRUPT',
        reason: 'bad-cluster-link',
        offset: v.fat[0] + v.usedCluster * v.width,
      });
      const all = await fatDriver.usedBlocks(memorySource(bytes), { assumeUsedOnDoubt: true });
      expect(all.used.count()).toBe(all.blockCount);
      expect(all.warnings[0]).toMatchObject({ code: 'assumed-used', reason: 'bad-cluster-link' });
    });

    it('a source shorter than the volume is CORRUPT truncated', async () => {
      const v = vols[name]!;
      expect(await rejection(v.bytes.subarray(0, v.bytes.length - 512))).toMatchObject({
        code: 'CORRUPT',
        reason: 'truncated',
      });
    });

    it.each([
      ['bytes per sector 0x300', 0x0b, [0x00, 0x03], 'bad-sector-size'],
      ['sectors per cluster 6', 0x0d, [6], 'bad-cluster-size'],
      ['no reserved sectors', 0x0e, [0, 0], 'bad-reserved'],
      ['no FAT', 0x10, [0], 'bad-fat-count'],
      ['no 0x55AA', 0x1fe, [0, 0], 'bad-signature'],
    ])('%s in the boot sector is CORRUPT %s', async (_what, at, patch, reason) => {
      const bytes = patched(vols[name]!, (b) => b.set(patch, at));
      expect(await rejection(bytes)).toMatchObject({ code: 'CORRUPT', reason });
      await expect(fatDriver.probe(memorySource(bytes))).resolves.toBeNull();
    });
  });

  it('a FAT16 FAT sized below its cluster count is CORRUPT bad-fat-size', async () => {
    const bytes = patched(vols.fat16!, (b) => b.writeUInt16LE(8, 0x16));
    expect(await rejection(bytes)).toMatchObject({ code: 'CORRUPT', reason: 'bad-fat-size' });
  });

  it('a FAT32 root cluster outside the volume is CORRUPT bad-root-cluster', async () => {
    const bytes = patched(vols.fat32!, (b) => b.writeUInt32LE(0x0fffffff, 0x2c));
    expect(await rejection(bytes)).toMatchObject({ code: 'CORRUPT', reason: 'bad-root-cluster' });
  });

  it('a FAT32 FSInfo sector with bad signatures is only a warning', async () => {
    const bytes = patched(vols.fat32!, (b) => b.writeUInt32LE(0, 512));
    const r = await fatDriver.usedBlocks(memorySource(bytes));
    expect(r.warnings.map((w) => w.code)).toEqual(['bad-fsinfo']);
    expect(r.used.equals(vols.fat32!.clean.used)).toBe(true);
  });

  it('mkfs.fat -F 32 on a volume too small for FAT32 is UNSUPPORTED fat-type-mismatch', async () => {
    // mkfs.fat writes a FAT32 layout with fewer than 65 525 clusters: Linux reads FAT32,
    // fatgen103 (and Windows, and mtools) FAT16. The probe still claims it, so the volume is
    // kept whole as unsupported rather than taken for something else.
    const path = await image('disk 20M\n  filesystem fat fat=32\n');
    await expect(usedOf(path)).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      reason: 'fat-type-mismatch',
    });
    const bytes = await readFile(path);
    await expect(fatDriver.probe(memorySource(bytes))).resolves.toMatchObject({
      filesystem: 'fat',
    });
  });
});
