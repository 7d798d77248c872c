import { describe, expect, it } from 'vitest';
import { hex, type Outcome, protect } from './hex.test-support.js';
import { applyFixups, parseMftRecord } from './mft-record.js';

// A 1 KiB FILE record header: usa_ofs 0x30, usa_count 3, USN 0x0007, sequence 1, attrs at 0x38,
// flags IN_USE, bytes_in_use 0x40, bytes_allocated 0x400, base record 0; then the end marker.
export const RECORD_HEADER = `
  46494c45 3000 0300 0000000000000000
  0100 0100 3800 0100 40000000 00040000
  0000000000000000 0000 0000 05000000
  0700 0000 0000 0000
  ffffffff 00000000`;

export function record(edit?: (r: Uint8Array) => void): Uint8Array {
  const r = hex(RECORD_HEADER, 1024);
  // Bytes the fixups must restore: the last two of each 512-byte stride.
  r.set([0xab, 0xcd], 510);
  r.set([0x12, 0x34], 1022);
  edit?.(r);
  return protect(r);
}

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return `${(error as { code: string }).code}/${(error as { reason: string }).reason}`;
  }
  return undefined;
}

describe('applyFixups', () => {
  it('restores the last two bytes of every 512-byte stride', () => {
    const r = record();
    expect([r[510], r[511], r[1022], r[1023]]).toEqual([7, 0, 7, 0]);
    applyFixups(r, 'test', 0);
    expect([r[510], r[511], r[1022], r[1023]]).toEqual([0xab, 0xcd, 0x12, 0x34]);
  });

  it('rejects a torn write (stride end ≠ USN) with reason fixup', () => {
    const r = record();
    r[1022] = 8;
    expect(reason(() => applyFixups(r, 'test', 0))).toBe<Outcome>('CORRUPT/fixup');
    const r2 = record();
    r2[511] = 1;
    expect(reason(() => applyFixups(r2, 'test', 0))).toBe<Outcome>('CORRUPT/fixup');
  });

  it('rejects an update sequence array that does not match the record size', () => {
    for (const count of [0, 1, 2, 4, 0xffff]) {
      const r = record();
      new DataView(r.buffer).setUint16(6, count, true);
      expect(reason(() => applyFixups(r, 'test', 0))).toBe<Outcome>('CORRUPT/fixup');
    }
    // usa_ofs odd, or so large the array leaves the first stride.
    const odd = record();
    odd[4] = 0x31;
    expect(reason(() => applyFixups(odd, 'test', 0))).toBe<Outcome>('CORRUPT/fixup');
    const far = record();
    far[4] = 0xfe;
    far[5] = 0x01;
    expect(reason(() => applyFixups(far, 'test', 0))).toBe<Outcome>('CORRUPT/fixup');
    expect(reason(() => applyFixups(new Uint8Array(1000), 'test', 0))).toBe<Outcome>(
      'CORRUPT/fixup',
    );
  });
});

describe('parseMftRecord', () => {
  it('parses the header after fixups', () => {
    expect(parseMftRecord(record(), 5, 4096)).toEqual({
      recordNumber: 5,
      sequenceNumber: 1,
      inUse: true,
      isDirectory: false,
      attrsOffset: 0x38,
      bytesInUse: 0x40,
      baseRecord: 0,
    });
  });

  it('reads the base record reference without tripping on a large sequence number', () => {
    // base_mft_record = record 0x1234, sequence 0xffff.
    const r = record((b) => b.set([0x34, 0x12, 0, 0, 0, 0, 0xff, 0xff], 0x20));
    expect(parseMftRecord(r, 9, 0).baseRecord).toBe(0x1234);
  });

  it('rejects bad signatures, BAAD records and bad sizes with stable reasons', () => {
    expect(
      reason(() =>
        parseMftRecord(
          record((r) => (r[0] = 0x47)),
          0,
          0,
        ),
      ),
    ).toBe<Outcome>('CORRUPT/bad-magic');
    expect(
      reason(() =>
        parseMftRecord(
          record((r) => r.set([0x42, 0x41, 0x41, 0x44], 0)),
          0,
          0,
        ),
      ),
    ).toBe<Outcome>('CORRUPT/fixup');
    expect(
      reason(() =>
        parseMftRecord(
          record((r) => (r[0x1d] = 8)),
          0,
          0,
        ),
      ),
    ).toBe<Outcome>('CORRUPT/bad-record-size');
    expect(
      reason(() =>
        parseMftRecord(
          record((r) => (r[0x19] = 8)),
          0,
          0,
        ),
      ),
    ).toBe<Outcome>('CORRUPT/length-mismatch');
    expect(
      reason(() =>
        parseMftRecord(
          record((r) => (r[0x14] = 0x3a)),
          0,
          0,
        ),
      ),
    ).toBe<Outcome>('CORRUPT/bad-offset');
    expect(reason(() => parseMftRecord(record().subarray(0, 0x20), 0, 0))).toBe<Outcome>(
      'CORRUPT/truncated',
    );
  });
});
