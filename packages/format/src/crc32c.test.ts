import { expect, test } from 'vitest';
import { crc32c, crc32cIsNative, crc32cPortable } from './crc32c.js';
import { prng, randomBytesFrom } from './test-support.js';

test('matches the RFC 3720 check value and test vectors', () => {
  expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
  // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, and an incrementing pattern.
  expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
});

test('continues over pieces', () => {
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    expect(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut)))).toBe(crc32c(bytes));
  }
});

test('native and portable implementations agree', () => {
  expect(crc32cIsNative).toBe(true);
  const rand = prng(11);
  for (let k = 0; k < 50; k++) {
    const bytes = randomBytesFrom(rand, Math.floor(rand() * 3000));
    const seed = (rand() * 2 ** 32) >>> 0;
    expect(crc32c(bytes, seed)).toBe(crc32cPortable(bytes, seed));
  }
  expect(crc32cPortable(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
});
