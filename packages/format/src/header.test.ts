import { expect, test } from 'vitest';
import { crc32c } from './crc32c.js';
import { encodeHeader, type Header, parseHeader } from './header.js';
import type { FormatReason } from './reasons.js';

const base: Omit<
  Header,
  'headerLength' | 'versionMajor' | 'versionMinor' | 'digestTable' | 'repeats'
> = {
  kind: 'incremental',
  backupId: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
  parentId: Uint8Array.from({ length: 16 }, (_, i) => 0xf0 + i),
  sourceSize: 10 * 4096 + 512,
  blockCount: 10,
  blockSize: 4096,
  blocksPerFrame: 256,
  createdAt: Date.UTC(2026, 0, 2, 3, 4, 5),
  compression: 'zstd',
  compressionLevel: -3,
  digestAlgorithm: 1,
  digestLength: 16,
  tailLength: 512,
  tailStored: true,
  sourceName: 'vm-01/disk0.raw',
  filesystem: 'ntfs',
  parentHint: 'disk0-2026-01-01.dkb',
  meta: { label: 'système', features: ['a', 'b'] },
};

/** Recompute the header CRC after an edit, so that only the edited field is wrong. */
function fixCrc(bytes: Uint8Array): void {
  new DataView(bytes.buffer).setUint32(bytes.length - 4, crc32c(bytes.subarray(0, -4)), true);
}

test('round trips every field', () => {
  const bytes = encodeHeader(base);
  const h = parseHeader(bytes);
  expect(h).toEqual({
    ...base,
    headerLength: bytes.length,
    versionMajor: 2,
    versionMinor: 2,
    digestTable: true,
    repeats: false,
  });
});

test('rejects damage and unknown features with typed errors', () => {
  const bytes = encodeHeader(base);
  const flipped = bytes.slice();
  flipped[0x40]! ^= 1;
  expect(() => parseHeader(flipped)).toThrow(
    expect.objectContaining({
      code: 'CORRUPT',
      reason: 'checksum' satisfies FormatReason,
      offset: bytes.length - 4,
    }),
  );
  const magic = bytes.slice();
  magic[0] = 0;
  expect(() => parseHeader(magic)).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-magic' satisfies FormatReason }),
  );
  expect(() => parseHeader(bytes.subarray(0, 40))).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'truncated' satisfies FormatReason }),
  );
});

test('refuses other major versions (1.x: incrementals with whole-state digest tables) as unsupported', () => {
  const bytes = encodeHeader(base);
  for (const major of [1, 3]) {
    const other = bytes.slice();
    other[0x08] = major;
    fixCrc(other);
    expect(() => parseHeader(other)).toThrow(
      expect.objectContaining({
        code: 'UNSUPPORTED',
        reason: 'version' satisfies FormatReason,
        offset: 0x08,
      }),
    );
  }
});

test('incompat bit 0 (2.1) means no digest table, bit 1 (2.2) repeats; any other bit is unsupported', () => {
  const without = encodeHeader({ ...base, digestTable: false });
  expect(new DataView(without.buffer).getUint32(0x10, true)).toBe(1);
  expect(parseHeader(without).digestTable).toBe(false);
  expect(parseHeader(without).repeats).toBe(false);
  const both = encodeHeader({ ...base, digestTable: false, repeats: true });
  expect(new DataView(both.buffer).getUint32(0x10, true)).toBe(3);
  expect(parseHeader(both)).toMatchObject({ digestTable: false, repeats: true });
  expect(parseHeader(encodeHeader({ ...base, repeats: true }))).toMatchObject({
    digestTable: true,
    repeats: true,
  });
  for (const flags of [4, 7, 0x80000000]) {
    const other = without.slice();
    new DataView(other.buffer).setUint32(0x10, flags, true);
    fixCrc(other);
    expect(() => parseHeader(other)).toThrow(
      expect.objectContaining({
        code: 'UNSUPPORTED',
        reason: 'incompat-flags' satisfies FormatReason,
        offset: 0x10,
      }),
    );
  }
});

test('rejects inconsistent geometry even with a valid checksum', () => {
  expect(() => parseHeader(encodeHeader({ ...base, blockSize: 3000 }))).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-geometry' satisfies FormatReason }),
  );
  expect(() => parseHeader(encodeHeader({ ...base, tailLength: 1 }))).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-geometry' satisfies FormatReason }),
  );
  // 2^40 blocks of 4 KiB fit the 2^53 size limit but not a bitmap: refused before allocating.
  expect(() =>
    parseHeader(encodeHeader({ ...base, blockCount: 2 ** 40, sourceSize: 2 ** 52 + 512 })),
  ).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-geometry' satisfies FormatReason }),
  );
  expect(() => parseHeader(encodeHeader({ ...base, kind: 'snapshot' }))).toThrow(
    expect.objectContaining({ code: 'CORRUPT', reason: 'bad-parent-id' satisfies FormatReason }),
  );
});
