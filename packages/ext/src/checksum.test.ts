import { describe, expect, it } from 'vitest';
import { crc16, crc32c, crc32cRaw, le32 } from './checksum.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crc32c', () => {
  it('matches the CRC-32C check value of "123456789"', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('raw form is the uninverted register, and chains', () => {
    const data = ascii('123456789');
    expect(crc32cRaw(0xffffffff, data)).toBe(~0xe3069283 >>> 0);
    const chained = crc32cRaw(crc32cRaw(0xffffffff, data, 0, 4), data, 4);
    expect(chained).toBe(crc32cRaw(0xffffffff, data));
  });
});

describe('crc16', () => {
  it('matches the CRC-16/ARC check value of "123456789" (init 0)', () => {
    expect(crc16(0, ascii('123456789'))).toBe(0xbb3d);
  });

  it('honours start and end', () => {
    const data = ascii('xx123456789yy');
    expect(crc16(0, data, 2, 11)).toBe(0xbb3d);
  });
});

describe('le32', () => {
  it('encodes little-endian', () => {
    expect([...le32(0x01020304)]).toEqual([4, 3, 2, 1]);
    expect([...le32(0xffffffff)]).toEqual([255, 255, 255, 255]);
  });
});
