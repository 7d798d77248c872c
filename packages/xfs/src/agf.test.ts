import { describe, expect, it } from 'vitest';
import { agflSize, parseAgf } from './agf.js';
import { put32, reasonOf, sealCrc, superblockSector, UUID } from './hex.test-support.js';
import { parseSuperblock } from './superblock.js';

const sb5 = parseSuperblock(superblockSector());
const sb4 = parseSuperblock(superblockSector({ version: 4 }));

/** An AGF sector of AG `agno`: bnobt root 1, cntbt root 2, one level each, free list 6..9. */
export function agfSector(agno: number, v5 = true, patch?: (b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(512);
  put32(b, 0x00, 0x58414746);
  put32(b, 0x04, 1);
  put32(b, 0x08, agno);
  put32(b, 0x0c, 4096);
  put32(b, 0x10, 1);
  put32(b, 0x14, 2);
  put32(b, 0x1c, 1);
  put32(b, 0x20, 1);
  put32(b, 0x28, 1);
  put32(b, 0x2c, 4);
  put32(b, 0x30, 4);
  put32(b, 0x34, 4000);
  put32(b, 0x38, 3990);
  if (v5) b.set(UUID, 0x40);
  patch?.(b);
  return v5 ? sealCrc(b, 0xd8) : b;
}

describe('AGF', () => {
  it('parses v5 and v4 AGFs', () => {
    expect(parseAgf(agfSector(2), 512, sb5, 2, 4096, 5)).toMatchObject({
      seqno: 2,
      length: 4096,
      bnoRoot: 1,
      bnoLevel: 1,
      flfirst: 1,
      fllast: 4,
      flcount: 4,
      freeblks: 4000,
    });
    expect(parseAgf(agfSector(0, false), 512, sb4, 0, 4096, 5).cntRoot).toBe(2);
  });
  it('checks magic, CRC, uuid, seqno, length, roots, levels and counts', () => {
    const p = (bytes: Uint8Array, agno = 0) =>
      reasonOf(() => parseAgf(bytes, 512, sb5, agno, 4096, 5));
    const raw = agfSector(0);
    raw[0x60] = 1;
    expect(p(raw)).toBe('checksum');
    expect(p(agfSector(0, true, (b) => put32(b, 0, 0x58414747)))).toBe('bad-magic');
    expect(p(agfSector(0, true, (b) => b.fill(0, 0x40, 0x50)))).toBe('bad-uuid');
    expect(p(agfSector(0, true, (b) => put32(b, 0x04, 2)))).toBe('bad-version');
    expect(p(agfSector(1))).toBe('bad-seqno');
    expect(p(agfSector(0, true, (b) => put32(b, 0x0c, 4095)))).toBe('bad-length');
    expect(p(agfSector(0, true, (b) => put32(b, 0x10, 4096)))).toBe('out-of-range');
    expect(p(agfSector(0, true, (b) => put32(b, 0x14, 0)))).toBe('out-of-range');
    expect(p(agfSector(0, true, (b) => put32(b, 0x1c, 6)))).toBe('bad-level');
    expect(p(agfSector(0, true, (b) => put32(b, 0x20, 0)))).toBe('bad-level');
    expect(p(agfSector(0, true, (b) => put32(b, 0x38, 4001)))).toBe('free-count');
    expect(p(agfSector(0).subarray(0, 100))).toBe('truncated');
  });
  it('sizes the AGFL by sector and version', () => {
    expect(agflSize(sb5)).toBe(119);
    expect(agflSize(sb4)).toBe(128);
  });
});
