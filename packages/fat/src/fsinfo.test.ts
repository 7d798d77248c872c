import { describe, expect, it } from 'vitest';
import { parseFsInfo } from './fsinfo.js';

describe('parseFsInfo', () => {
  const sector = (free: number) => {
    const b = new Uint8Array(512);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0x41615252, true);
    v.setUint32(0x1e4, 0x61417272, true);
    v.setUint32(0x1e8, free, true);
    v.setUint32(0x1fc, 0xaa550000, true);
    return b;
  };

  it('reads the free-cluster hint', () => {
    expect(parseFsInfo(sector(1234))).toEqual({ valid: true, freeCount: 1234 });
    expect(parseFsInfo(sector(0xffffffff))).toEqual({ valid: true, freeCount: undefined });
  });

  it('flags bad signatures', () => {
    const b = sector(5);
    b[0] = 0;
    expect(parseFsInfo(b).valid).toBe(false);
    expect(() => parseFsInfo(b.subarray(0, 100))).toThrow(/needs 512 bytes/);
  });
});
