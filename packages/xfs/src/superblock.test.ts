import { describe, expect, it } from 'vitest';
import { put32, put64, reasonOf, sealCrc, superblockSector, UUID } from './hex.test-support.js';
import {
  agLength,
  fsblockToAg,
  parseSuperblock,
  superblockCrcOk,
  unknownFeatures,
} from './superblock.js';

describe('superblock', () => {
  it('parses a v5 superblock and checks its CRC', () => {
    const bytes = superblockSector();
    const sb = parseSuperblock(bytes);
    expect(sb).toMatchObject({
      version: 5,
      blockSize: 4096,
      dblocks: 16384,
      agblocks: 4096,
      agcount: 4,
      agblklog: 12,
      sectsize: 512,
      logstart: 8198,
      label: 'data',
    });
    expect(sb.metaUuid).toEqual(UUID);
    expect(superblockCrcOk(bytes, sb)).toBe(true);
    bytes[0x6d] = bytes[0x6d]! ^ 1;
    expect(superblockCrcOk(bytes, sb)).toBe(false);
    expect(unknownFeatures(sb)).toEqual([]);
  });

  it('parses a v4 superblock (no CRC, no v5 feature words)', () => {
    const sb = parseSuperblock(superblockSector({ version: 4 }));
    expect(sb.version).toBe(4);
    expect(sb.featuresIncompat).toBe(0);
    expect(superblockCrcOk(new Uint8Array(512), sb)).toBe(true);
  });

  it('uses sb_meta_uuid for v5 metadata under meta_uuid', () => {
    const bytes = superblockSector({ incompat: 0xb | 0x4 });
    bytes.fill(0x77, 0xf8, 0x108);
    expect(parseSuperblock(sealCrc(bytes, 0xe0)).metaUuid).toEqual(new Uint8Array(16).fill(0x77));
  });

  it('validates the geometry', () => {
    const cases: Array<[Parameters<typeof superblockSector>[0], string]> = [
      [{ blocklog: 17 }, 'bad-block-size'],
      [{ blocklog: 8 }, 'bad-block-size'],
      [{ sectlog: 13, blocklog: 12 }, 'bad-sector-size'],
      [{ agblocks: 63 }, 'bad-ag-geometry'],
      [{ agcount: 0 }, 'bad-ag-geometry'],
      [{ dblocks: 3 * 4096 + 63 }, 'bad-block-count'],
      [{ dblocks: 4 * 4096 + 1 }, 'bad-block-count'],
    ];
    for (const [fields, want] of cases)
      expect(reasonOf(() => parseSuperblock(superblockSector(fields)))).toBe(want);
    // sb_blocksize disagreeing with sb_blocklog.
    const bytes = superblockSector();
    put32(bytes, 0x04, 8192);
    expect(reasonOf(() => parseSuperblock(bytes))).toBe('bad-block-size');
    // sb_agblklog not the rounded-up log2 of sb_agblocks.
    const b2 = superblockSector();
    b2[0x7c] = 13;
    expect(reasonOf(() => parseSuperblock(b2))).toBe('bad-ag-geometry');
    const b3 = superblockSector();
    b3[0x7e] = 1;
    expect(reasonOf(() => parseSuperblock(b3))).toBe('in-progress');
    expect(reasonOf(() => parseSuperblock(superblockSector().subarray(0, 0x100)))).toBe(
      'truncated',
    );
  });

  it('a short last AG is valid', () => {
    const sb = parseSuperblock(superblockSector({ dblocks: 3 * 4096 + 100 }));
    expect([agLength(sb, 0), agLength(sb, 3)]).toEqual([4096, 100]);
  });

  it('ignores features2 on a v4 superblock without MOREBITS', () => {
    const v4 = superblockSector({ version: 4 });
    v4[0x64] = 0x34; // versionnum 0x34a4: MOREBITS clear
    put32(v4, 0xc8, 0x4);
    expect(parseSuperblock(v4).features2).toBe(0);
  });

  it('names unknown features', () => {
    expect(unknownFeatures(parseSuperblock(superblockSector({ incompat: 0xb | 0x1000 })))).toEqual([
      'incompat 0x1000',
    ]);
    expect(unknownFeatures(parseSuperblock(superblockSector({ roCompat: 0x10 })))).toEqual([
      'ro-compat 0x10',
    ]);
    const v4 = superblockSector({ version: 4 });
    put32(v4, 0xc8, 0x8a | 0x4);
    expect(unknownFeatures(parseSuperblock(v4))).toEqual(['features2 0x4']);
  });

  it('unpacks fsblock numbers through agblklog, not agblocks', () => {
    // 3000 blocks per AG: agblklog 12, so AG 1 starts at fsblock 4096, not 3000.
    const sb = parseSuperblock(superblockSector({ agblocks: 3000, dblocks: 12000 }));
    expect(fsblockToAg(sb, 4096 + 17)).toEqual({ agno: 1, agbno: 17 });
    expect(fsblockToAg(sb, 2999)).toEqual({ agno: 0, agbno: 2999 });
  });

  it('refuses a filesystem above 2^53 bytes', () => {
    const bytes = superblockSector({ agblocks: 2 ** 28, agcount: 2 ** 20 });
    put64(bytes, 0x08, 2 ** 48);
    expect(reasonOf(() => parseSuperblock(sealCrc(bytes, 0xe0)))).toBe('too-large');
  });
});
