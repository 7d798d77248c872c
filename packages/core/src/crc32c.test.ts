import { describe, expect, it } from 'vitest';
import { crc32c, crc32cUpdate } from './crc32c.js';
import { randomBytes } from './test.js';

/** Bit-at-a-time reference, independent of the tables. */
function reference(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the check value', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
  });

  it('matches a bit-at-a-time reference at every length and alignment', () => {
    const bytes = randomBytes(300, 9);
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= bytes.length; end += 7) {
        const slice = bytes.subarray(start, end);
        expect(crc32c(slice)).toBe(reference(slice));
        expect(~crc32cUpdate(0xffffffff, bytes, start, end) >>> 0).toBe(reference(slice));
      }
    }
  });

  it('continues over pieces', () => {
    const bytes = randomBytes(1000, 10);
    expect(crc32c(bytes.subarray(333), crc32c(bytes.subarray(0, 333)))).toBe(crc32c(bytes));
  });
});
