import { describe, expect, it } from 'vitest';
import { CorruptError } from './errors.js';
import { FieldReader } from './fields.js';
import { CORE_REASONS, type CoreReason } from './reasons.js';

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function thrown(fn: () => unknown): CorruptError {
  try {
    fn();
  } catch (error) {
    expect(CorruptError.isInstance(error)).toBe(true);
    return error as CorruptError;
  }
  throw new Error('expected a CorruptError');
}

function expectCorrupt(
  fn: () => unknown,
  expected: { offset: number; reason: CoreReason; structure?: string },
): void {
  const error = thrown(fn);
  expect(error.code).toBe('CORRUPT');
  expect(error.offset).toBe(expected.offset);
  expect(error.reason).toBe(expected.reason);
  expect(error.structure).toBe(expected.structure ?? 'test structure');
  expect(CORE_REASONS).toContain(error.reason);
}

// 01 02 03 04 05 06 07 08 f0 f1 f2 f3 f4 f5 f6 f7 at absolute offset 1000.
const BYTES = hex('0102030405060708 f0f1f2f3f4f5f6f7');
const r = new FieldReader(BYTES, 'test structure', 1000);

describe('FieldReader', () => {
  it('reads every unsigned width little-endian', () => {
    expect(r.u8(0)).toBe(0x01);
    expect(r.u8(15)).toBe(0xf7);
    expect(r.u16le(0)).toBe(0x0201);
    expect(r.u32le(0)).toBe(0x04030201);
    expect(r.u32le(8)).toBe(0xf3f2f1f0);
    expect(r.u64leBig(0)).toBe(0x0807060504030201n);
    expect(new FieldReader(hex('0102030405060700'), 'x').u64le(0)).toBe(0x0007060504030201);
    expect(r.u64leBig(8)).toBe(0xf7f6f5f4f3f2f1f0n);
  });

  it('reads every unsigned width big-endian', () => {
    expect(r.u16be(0)).toBe(0x0102);
    expect(r.u32be(0)).toBe(0x01020304);
    expect(r.u32be(8)).toBe(0xf0f1f2f3);
    expect(r.u64beBig(0)).toBe(0x0102030405060708n);
    expect(new FieldReader(hex('0007060504030201'), 'x').u64be(0)).toBe(0x0007060504030201);
    expect(r.u64beBig(8)).toBe(0xf0f1f2f3f4f5f6f7n);
  });

  it('reads signed widths in both byte orders', () => {
    expect(r.i8(0)).toBe(1);
    expect(r.i8(8)).toBe(0xf0 - 0x100);
    expect(r.i16le(8)).toBe(0xf1f0 - 0x10000);
    expect(r.i16be(8)).toBe(0xf0f1 - 0x10000);
    expect(r.i32le(8)).toBe(0xf3f2f1f0 - 2 ** 32);
    expect(r.i32be(8)).toBe(0xf0f1f2f3 - 2 ** 32);
    expect(r.i32le(0)).toBe(0x04030201);
    expect(r.i64leBig(8)).toBe(0xf7f6f5f4f3f2f1f0n - 2n ** 64n);
    expect(r.i64beBig(8)).toBe(0xf0f1f2f3f4f5f6f7n - 2n ** 64n);
  });

  it('reads small negative 64-bit values as numbers', () => {
    const minusTwo = new FieldReader(hex('feffffffffffffff'), 'test structure');
    expect(minusTwo.i64le(0)).toBe(-2);
    const minusThree = new FieldReader(hex('fffffffffffffffd'), 'test structure');
    expect(minusThree.i64be(0)).toBe(-3);
  });

  it('reads at an offset inside a larger buffer (byteOffset is honoured)', () => {
    const backing = hex('ffff 3412 ffff');
    const inner = new FieldReader(backing.subarray(2, 4), 'test structure', 50);
    expect(inner.u16le(0)).toBe(0x1234);
    expect(inner.u16be(0)).toBe(0x3412);
    expectCorrupt(() => inner.u16le(1), { offset: 51, reason: 'truncated' });
  });

  it('accepts the last field that fits exactly', () => {
    expect(r.u8(15)).toBe(0xf7);
    expect(r.u16le(14)).toBe(0xf7f6);
    expect(r.u32be(12)).toBe(0xf4f5f6f7);
    expect(r.u64leBig(8)).toBe(0xf7f6f5f4f3f2f1f0n);
    expect(r.slice(16, 0).length).toBe(0);
  });

  it('reports a read past the end as CORRUPT truncated at the absolute field offset', () => {
    expectCorrupt(() => r.u8(16), { offset: 1016, reason: 'truncated' });
    expectCorrupt(() => r.i8(16), { offset: 1016, reason: 'truncated' });
    expectCorrupt(() => r.u16le(15), { offset: 1015, reason: 'truncated' });
    expectCorrupt(() => r.u16be(15), { offset: 1015, reason: 'truncated' });
    expectCorrupt(() => r.i16le(15), { offset: 1015, reason: 'truncated' });
    expectCorrupt(() => r.i16be(15), { offset: 1015, reason: 'truncated' });
    expectCorrupt(() => r.u32le(13), { offset: 1013, reason: 'truncated' });
    expectCorrupt(() => r.u32be(13), { offset: 1013, reason: 'truncated' });
    expectCorrupt(() => r.i32le(13), { offset: 1013, reason: 'truncated' });
    expectCorrupt(() => r.i32be(13), { offset: 1013, reason: 'truncated' });
    expectCorrupt(() => r.u64le(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.u64be(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.i64le(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.i64be(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.u64leBig(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.u64beBig(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.i64leBig(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.i64beBig(9), { offset: 1009, reason: 'truncated' });
    expectCorrupt(() => r.slice(10, 7), { offset: 1010, reason: 'truncated' });
    expectCorrupt(() => r.ascii(12, 5), { offset: 1012, reason: 'truncated' });
    expectCorrupt(() => r.utf16le(14, 2), { offset: 1014, reason: 'truncated' });
    expectCorrupt(() => r.guid(1), { offset: 1001, reason: 'truncated' });
    expectCorrupt(() => r.sub(8, 9), { offset: 1008, reason: 'truncated' });
  });

  it('rejects negative, fractional and huge positions instead of reading garbage', () => {
    expectCorrupt(() => r.u8(-1), { offset: 999, reason: 'truncated' });
    expectCorrupt(() => r.u32le(0.5), { offset: 1000.5, reason: 'truncated' });
    expectCorrupt(() => r.slice(0, -1), { offset: 1000, reason: 'truncated' });
    expectCorrupt(() => r.u64le(2 ** 53), { offset: 1000 + 2 ** 53, reason: 'truncated' });
    expect(r.has(0, 16)).toBe(true);
    expect(r.has(0, 17)).toBe(false);
    expect(r.has(-1, 1)).toBe(false);
    expect(r.has(Number.NaN, 1)).toBe(false);
  });

  it('need checks the whole structure and reports it at the structure offset', () => {
    expect(r.need(16)).toBe(r);
    expectCorrupt(() => r.need(17), { offset: 1000, reason: 'truncated' });
  });

  it('accepts 2^53 − 1 in a 64-bit field and refuses 2^53 as too-large', () => {
    const max = new FieldReader(hex('ffffffffffff1f00 001fffffffffffff'), 'test structure', 8);
    expect(max.u64le(0)).toBe(Number.MAX_SAFE_INTEGER);
    expect(max.u64be(8)).toBe(Number.MAX_SAFE_INTEGER);
    const over = new FieldReader(hex('0000000000002000 0020000000000000'), 'test structure', 8);
    expectCorrupt(() => over.u64le(0), { offset: 8, reason: 'too-large' });
    expectCorrupt(() => over.u64be(8), { offset: 16, reason: 'too-large' });
    expect(over.u64leBig(0)).toBe(2n ** 53n);
    expect(over.u64beBig(8)).toBe(2n ** 53n);
    expect(thrown(() => over.u64le(0, 'l1_table_offset')).message).toContain('l1_table_offset');
    const ones = new FieldReader(hex('ffffffffffffffff'), 'test structure');
    expectCorrupt(() => ones.u64le(0), { offset: 0, reason: 'too-large' });
    expect(ones.u64leBig(0)).toBe(2n ** 64n - 1n);
    expect(ones.i64le(0)).toBe(-1);
  });

  it('refuses signed 64-bit values below −(2^53 − 1) as too-large', () => {
    const min = new FieldReader(hex('010000000000e0ff'), 'test structure');
    expect(min.i64le(0)).toBe(Number.MIN_SAFE_INTEGER);
    const under = new FieldReader(hex('000000000000e0ff'), 'test structure');
    expectCorrupt(() => under.i64le(0), { offset: 0, reason: 'too-large' });
    const over = new FieldReader(hex('0020000000000000'), 'test structure');
    expectCorrupt(() => over.i64be(0), { offset: 0, reason: 'too-large' });
  });

  it('reads variable-width little-endian integers, signed and unsigned', () => {
    const v = new FieldReader(hex('ff 10 80 ffffffffffffff7f'), 'test structure', 40);
    expect(v.uintLeBig(0, 0)).toBe(0n);
    expect(v.intLeBig(0, 0)).toBe(0n);
    expect(v.uintLeBig(0, 1)).toBe(0xffn);
    expect(v.intLeBig(0, 1)).toBe(-1n);
    expect(v.intLeBig(1, 1)).toBe(0x10n);
    expect(v.uintLeBig(1, 2)).toBe(0x8010n);
    expect(v.intLeBig(1, 2)).toBe(0x8010n - 0x10000n);
    expect(v.intLeBig(1, 3)).toBe(0xff8010n - 0x1000000n);
    expect(v.intLeBig(3, 8)).toBe(0x7fffffffffffffffn);
    expect(v.uintLeBig(2, 8)).toBe(0xffffffffffffff80n);
    expect(v.intLeBig(2, 8)).toBe(-128n);
    expectCorrupt(() => v.intLeBig(4, 8), { offset: 44, reason: 'truncated' });
    expectCorrupt(() => v.uintLeBig(11, 1), { offset: 51, reason: 'truncated' });
    // A width outside 0..8 is the parser's bug, not the data's.
    expect(() => v.uintLeBig(0, 9)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', reason: 'bad-range' }),
    );
  });

  it('slices without copying', () => {
    const part = r.slice(2, 3);
    expect([...part]).toEqual([3, 4, 5]);
    expect(part.buffer).toBe(BYTES.buffer);
  });

  it('sub-readers keep absolute offsets and may rename the structure', () => {
    const entry = r.sub(8, 8, 'test entry');
    expect(entry.offset).toBe(1008);
    expect(entry.length).toBe(8);
    expect(entry.u16le(0)).toBe(0xf1f0);
    expectCorrupt(() => entry.u8(8), {
      offset: 1016,
      reason: 'truncated',
      structure: 'test entry',
    });
    expect(r.sub(0, 4).structure).toBe('test structure');
  });

  it('decodes ASCII, UTF-16LE and mixed-endian GUIDs', () => {
    const text = new FieldReader(hex('46494c45 2400 4e00 3dd8 00de'), 'test structure');
    expect(text.ascii(0, 4)).toBe('FILE');
    expect(text.utf16le(4, 2)).toBe('$N');
    expect(text.utf16le(8, 2)).toBe('\u{1f600}');
    expect(text.utf16le(8, 1)).toBe('\ud83d'); // lone surrogate kept
    expect(text.utf16le(0, 0)).toBe('');
    // The GPT "Linux filesystem" type GUID as stored on disk.
    const guid = new FieldReader(hex('af3dc60f838472478e793d69d8477de4'), 'test structure');
    expect(guid.guid(0)).toBe('0fc63daf-8483-4772-8e79-3d69d8477de4');
  });

  it('decodes long UTF-16 strings across the 4096-unit chunk boundary', () => {
    const units = 5000;
    const bytes = new Uint8Array(units * 2);
    for (let i = 0; i < units; i++) bytes[i * 2] = 0x41 + (i % 26);
    const text = new FieldReader(bytes, 'test structure').utf16le(0, units);
    expect(text.length).toBe(units);
    expect(text.charCodeAt(4095)).toBe(0x41 + (4095 % 26));
    expect(text.charCodeAt(4096)).toBe(0x41 + (4096 % 26));
    expect(text.charCodeAt(4999)).toBe(0x41 + (4999 % 26));
  });

  it('corrupt() builds an error at the absolute offset with the given reason', () => {
    const typed = new FieldReader<'bad-magic'>(BYTES, 'test structure', 1000);
    const error = typed.corrupt('bad magic', 4, 'bad-magic');
    expect(error.code).toBe('CORRUPT');
    expect(error.offset).toBe(1004);
    expect(error.structure).toBe('test structure');
    expect(error.reason).toBe('bad-magic');
  });

  it('works on an empty buffer', () => {
    const empty = new FieldReader(new Uint8Array(0), 'test structure', 7);
    expect(empty.length).toBe(0);
    expectCorrupt(() => empty.u8(0), { offset: 7, reason: 'truncated' });
    expect(empty.need(0)).toBe(empty);
  });
});
