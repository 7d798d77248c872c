import { CorruptError, UnsupportedError } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { mapBlockSize, parseBootSector } from './boot-sector.js';
import { bootSector, FAT32_DEFAULTS } from './hex.test-support.js';

const error = (
  bytes: Uint8Array,
): { code: string; reason: string | undefined; offset?: number } => {
  try {
    parseBootSector(bytes, 1000);
  } catch (e) {
    if (CorruptError.isInstance(e) || UnsupportedError.isInstance(e)) {
      return { code: e.code, reason: e.reason, offset: e.offset };
    }
    throw e;
  }
  throw new Error('expected an error');
};

describe('parseBootSector', () => {
  it('reads a FAT16 boot sector and computes its layout', () => {
    const bs = parseBootSector(bootSector());
    // 4 reserved + 2 × 32 FAT sectors + 512 × 32 / 512 = 32 root directory sectors.
    expect(bs).toMatchObject({
      fatType: 16,
      bytesPerSector: 512,
      clusterSize: 2048,
      rootDirSectors: 32,
      firstDataSector: 100,
      clusterCount: Math.floor((32768 - 100) / 4),
      label: 'DATA',
      volumeId: 0x12345678,
      dirtyFlag: false,
    });
    expect(mapBlockSize(bs)).toBe(2048);
  });

  it('reads a FAT32 boot sector', () => {
    const bs = parseBootSector(bootSector({}, FAT32_DEFAULTS));
    expect(bs).toMatchObject({
      fatType: 32,
      rootCluster: 2,
      fsInfoSector: 1,
      backupBootSector: 6,
      firstDataSector: 32 + 2 * 600,
      mirroring: true,
      label: 'ESP',
    });
    expect(bs.clusterCount).toBe(Math.floor((600 * 1024 - 1232) / 8));
  });

  it('decides the type by cluster count only, at fatgen103’s exact limits', () => {
    // 4084 clusters is FAT12, 4085 FAT16 (FAT size large enough for either).
    const at = (clusters: number) =>
      parseBootSector(
        bootSector({ sectorsPerCluster: 1, totalSectors16: 100 + clusters, fatSize16: 32 }),
      ).fatType;
    expect(at(4084)).toBe(12);
    expect(at(4085)).toBe(16);
    const fat32 = (clusters: number) =>
      parseBootSector(
        bootSector({ sectorsPerCluster: 1, totalSectors32: 1232 + clusters }, FAT32_DEFAULTS),
      );
    expect(() => fat32(65524)).toThrow(/FAT16 by the specification/);
    expect(fat32(65525).fatType).toBe(32);
  });

  it('maps in sectors when the data region does not start on a cluster boundary', () => {
    // 1 + 2 × 9 + 14 = 33 sectors before cluster 2, clusters of 4 sectors: 512-byte blocks.
    const bs = parseBootSector(
      bootSector({ reserved: 1, fatSize16: 9, rootEntries: 224, totalSectors16: 2880 }),
    );
    expect(bs.firstDataSector).toBe(33);
    expect(mapBlockSize(bs)).toBe(512);
    // 34 sectors: 1 KiB blocks.
    const two = parseBootSector(
      bootSector({ reserved: 2, fatSize16: 9, rootEntries: 224, totalSectors16: 2880 }),
    );
    expect(mapBlockSize(two)).toBe(1024);
  });

  it('reads the dirty flag only with an extended boot signature', () => {
    expect(parseBootSector(bootSector({ flags: 1 })).dirtyFlag).toBe(true);
    expect(parseBootSector(bootSector({ flags: 1, bootSig: 0 })).dirtyFlag).toBe(false);
    expect(parseBootSector(bootSector({ flags: 1 }, FAT32_DEFAULTS)).dirtyFlag).toBe(true);
  });

  it.each([
    ['a short buffer', bootSector().subarray(0, 511), 'CORRUPT', 'truncated'],
    ['no 0x55AA', bootSector({ signature: 0 }), 'CORRUPT', 'bad-signature'],
    ['no jump', bootSector({ jmp: [0x33, 0xc0, 0x8e] }), 'CORRUPT', 'bad-signature'],
    ['256-byte sectors', bootSector({ bytesPerSector: 256 }), 'CORRUPT', 'bad-sector-size'],
    ['8 KiB sectors', bootSector({ bytesPerSector: 8192 }), 'CORRUPT', 'bad-sector-size'],
    ['3 sectors per cluster', bootSector({ sectorsPerCluster: 3 }), 'CORRUPT', 'bad-cluster-size'],
    ['0 sectors per cluster', bootSector({ sectorsPerCluster: 0 }), 'CORRUPT', 'bad-cluster-size'],
    ['no reserved sector', bootSector({ reserved: 0 }), 'CORRUPT', 'bad-reserved'],
    ['no FAT', bootSector({ fats: 0 }), 'CORRUPT', 'bad-fat-count'],
    ['media 0x00', bootSector({ media: 0 }), 'CORRUPT', 'bad-media'],
    ['no sectors', bootSector({ totalSectors16: 0 }), 'CORRUPT', 'bad-total-sectors'],
    ['all metadata', bootSector({ totalSectors16: 100 }), 'CORRUPT', 'bad-total-sectors'],
    ['a FAT too small', bootSector({ fatSize16: 10 }), 'CORRUPT', 'bad-fat-size'],
    ['FAT16 without root', bootSector({ rootEntries: 0 }), 'CORRUPT', 'bad-root-entries'],
    [
      'FAT32 with a fixed root',
      bootSector({ rootEntries: 16 }, FAT32_DEFAULTS),
      'CORRUPT',
      'bad-root-entries',
    ],
    [
      'FAT32 root cluster 1',
      bootSector({ rootCluster: 1 }, FAT32_DEFAULTS),
      'CORRUPT',
      'bad-root-cluster',
    ],
    [
      'FAT32 FSInfo past the reserved sectors',
      bootSector({ fsInfo: 40 }, FAT32_DEFAULTS),
      'CORRUPT',
      'out-of-range',
    ],
    ['FAT32 version 1.0', bootSector({ version: 0x100 }, FAT32_DEFAULTS), 'UNSUPPORTED', 'version'],
    [
      'a FAT32 layout with FAT16’s cluster count',
      bootSector({ totalSectors32: 40000 }, FAT32_DEFAULTS),
      'UNSUPPORTED',
      'fat-type-mismatch',
    ],
  ])('rejects %s', (_what, bytes, code, reason) => {
    expect(error(bytes)).toMatchObject({ code, reason });
  });

  it('names the field’s byte in the source', () => {
    expect(error(bootSector({ fats: 0 })).offset).toBe(1000 + 0x10);
  });
});
