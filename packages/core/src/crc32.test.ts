import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Update } from './crc32.js';
import { randomBytes } from './test.js';

describe('crc32', () => {
  it('matches the check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
  it('matches zlib on random data, and chains', () => {
    const bytes = randomBytes(10_000, 7);
    expect(crc32(bytes)).toBe(zlibCrc32(bytes) >>> 0);
    const split = crc32Update(
      crc32Update(0xffffffff, bytes.subarray(0, 3333)),
      bytes.subarray(3333),
    );
    expect((split ^ 0xffffffff) >>> 0).toBe(crc32(bytes));
  });
});
