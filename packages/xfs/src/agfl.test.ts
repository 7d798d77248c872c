import { hasErrorCode } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { parseAgfl } from './agfl.js';
import { put32, sealCrc, superblockSector, UUID } from './hex.test-support.js';
import { parseSuperblock } from './superblock.js';

const sb5 = parseSuperblock(superblockSector());
const sb4 = parseSuperblock(superblockSector({ version: 4 }));

/** An AGFL sector with `blocks` in slots from `first`, wrapping (v5 has a 36-byte header). */
function agflSector(v5: boolean, first: number, blocks: number[], agno = 0): Uint8Array {
  const b = new Uint8Array(512).fill(0xff);
  const base = v5 ? 0x24 : 0;
  const size = (512 - base) / 4;
  for (const [k, bno] of blocks.entries()) put32(b, base + ((first + k) % size) * 4, bno);
  if (v5) {
    put32(b, 0, 0x5841464c);
    put32(b, 4, agno);
    b.set(UUID, 8);
    b.fill(0, 0x18, 0x24);
    sealCrc(b, 0x20);
  }
  return b;
}
const window = (flfirst: number, fllast: number, flcount: number) => ({ flfirst, fllast, flcount });

describe('AGFL', () => {
  it('lists the blocks between flfirst and fllast', () => {
    expect(
      parseAgfl(agflSector(true, 1, [6, 7, 8, 9]), 1536, sb5, 0, 4096, window(1, 4, 4)),
    ).toEqual([6, 7, 8, 9]);
    expect(parseAgfl(agflSector(false, 0, [6, 7]), 1536, sb4, 0, 4096, window(0, 1, 2))).toEqual([
      6, 7,
    ]);
    expect(parseAgfl(agflSector(true, 0, []), 1536, sb5, 0, 4096, window(0, 118, 0))).toEqual([]);
  });
  it('wraps at the end of the array (119 slots on v5 with 512-byte sectors)', () => {
    const bytes = agflSector(true, 117, [20, 21, 22, 23]);
    expect(parseAgfl(bytes, 1536, sb5, 0, 4096, window(117, 1, 4))).toEqual([20, 21, 22, 23]);
  });
  it('returns null for an inconsistent window (the kernel resets such a list)', () => {
    const bytes = agflSector(true, 1, [6, 7, 8, 9]);
    expect(parseAgfl(bytes, 1536, sb5, 0, 4096, window(1, 5, 4))).toBeNull();
    expect(parseAgfl(bytes, 1536, sb5, 0, 4096, window(119, 3, 4))).toBeNull();
    expect(parseAgfl(bytes, 1536, sb5, 0, 4096, window(0, 0, 120))).toBeNull();
  });
  it('checks magic, CRC, seqno and entries', () => {
    const p = (bytes: Uint8Array, w = window(1, 4, 4), agno = 0) => {
      try {
        parseAgfl(bytes, 1536, sb5, agno, 4096, w);
      } catch (e) {
        if (hasErrorCode(e, 'CORRUPT')) return e.reason;
        throw e;
      }
      return undefined;
    };
    const good = agflSector(true, 1, [6, 7, 8, 9]);
    const crc = good.slice();
    crc[511] = 0;
    expect(p(crc)).toBe('checksum');
    const magic = good.slice();
    magic[0] = 0;
    expect(p(magic)).toBe('bad-magic');
    expect(p(good, window(1, 4, 4), 3)).toBe('bad-seqno');
    expect(p(agflSector(true, 1, [6, 7, 4096, 9]))).toBe('out-of-range');
    expect(p(agflSector(true, 1, [6, 7, 8]))).toBe('out-of-range'); // slot 4 is NULLAGBLOCK
  });
});
