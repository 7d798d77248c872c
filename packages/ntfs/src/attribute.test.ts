import { describe, expect, it } from 'vitest';
import { AT_DATA, AT_STANDARD_INFORMATION, parseAttributes } from './attribute.js';
import { hex, type Outcome, protect } from './hex.test-support.js';
import { parseMftRecord } from './mft-record.js';

const HEADER = `
  46494c45 3000 0300 0000000000000000
  0100 0100 3800 0100 00000000 00040000
  0000000000000000 0000 0000 05000000
  0700 0000 0000 0000`;

// Resident $STANDARD_INFORMATION-like attribute with an 8-byte value.
const RESIDENT = `
  10000000 20000000 00 00 1800 0000 0000
  08000000 1800 0000
  0102030405060708`;

// Non-resident unnamed $DATA: VCNs 0..0x17, 0x11234 bytes, runlist 21 18 3456 00.
const NON_RESIDENT = `
  80000000 48000000 01 00 4000 0000 0100
  0000000000000000 1700000000000000
  4000 00 0000000000
  0080010000000000 3412010000000000 3412010000000000
  2118345600000000`;

// Resident $DATA named "$Bad" with an empty value.
const NAMED = `
  80000000 20000000 00 04 1800 0000 0200
  00000000 2000 0000
  2400420061006400`;

function build(attrs: string[], edit?: (r: Uint8Array) => void) {
  const body = `${attrs.join(' ')} ffffffff 00000000`;
  const r = hex(HEADER + body, 1024);
  new DataView(r.buffer).setUint32(0x18, 0x38 + hex(body).length, true);
  edit?.(r);
  protect(r);
  const header = parseMftRecord(r, 5, 0x10000);
  return () => parseAttributes(r, header, 0x10000);
}

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return `${(error as { code: string }).code}/${(error as { reason: string }).reason}`;
  }
  return undefined;
}

describe('parseAttributes', () => {
  it('parses resident, non-resident and named attributes up to the end marker', () => {
    const attrs = build([RESIDENT, NON_RESIDENT, NAMED])();
    expect(attrs).toHaveLength(3);
    const [si, data, bad] = attrs;
    expect(si).toMatchObject({
      type: AT_STANDARD_INFORMATION,
      resident: true,
      name: '',
      offset: 0x10038,
    });
    expect(si?.resident && [...si.value]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(data).toMatchObject({
      type: AT_DATA,
      resident: false,
      lowestVcn: 0,
      highestVcn: 0x17,
      allocatedSize: 0x18000,
      dataSize: 0x11234,
      initializedSize: 0x11234,
      mappingPairsOffset: 0x10038 + 0x20 + 0x40,
    });
    expect(data && !data.resident && [...data.mappingPairs.subarray(0, 5)]).toEqual([
      0x21, 0x18, 0x34, 0x56, 0,
    ]);
    expect(bad).toMatchObject({ type: AT_DATA, name: '$Bad', resident: true });
  });

  it('rejects attribute lengths that are zero, unaligned or past bytes_in_use', () => {
    expect(reason(build([RESIDENT], (r) => (r[0x3c] = 0)))).toBe<Outcome>(
      'CORRUPT/length-mismatch',
    );
    expect(reason(build([RESIDENT], (r) => (r[0x3c] = 0x21)))).toBe<Outcome>(
      'CORRUPT/length-mismatch',
    );
    expect(reason(build([RESIDENT], (r) => (r[0x3c] = 0xf8)))).toBe<Outcome>(
      'CORRUPT/length-mismatch',
    );
  });

  it('rejects a missing end marker, values and names outside the attribute', () => {
    // bytes_in_use ends right after the first attribute: no end marker within it.
    expect(reason(build([RESIDENT], (r) => (r[0x18] = 0x58)))).toBe<Outcome>('CORRUPT/truncated');
    expect(reason(build([RESIDENT], (r) => (r[0x38 + 0x10] = 0x10)))).toBe<Outcome>(
      'CORRUPT/truncated',
    );
    expect(reason(build([NAMED], (r) => (r[0x38 + 0x09] = 0x10)))).toBe<Outcome>(
      'CORRUPT/bad-offset',
    );
    expect(reason(build([RESIDENT], (r) => (r[0x38 + 0x08] = 2)))).toBe<Outcome>(
      'CORRUPT/bad-flag',
    );
  });

  it('rejects inconsistent non-resident headers', () => {
    const d = 0x38; // NON_RESIDENT is first here
    // highest_vcn < lowest_vcn − 1
    expect(reason(build([NON_RESIDENT], (r) => (r[d + 0x10] = 0x20)))).toBe<Outcome>(
      'CORRUPT/bad-vcn',
    );
    // mapping pairs offset inside the header
    expect(reason(build([NON_RESIDENT], (r) => (r[d + 0x20] = 0x30)))).toBe<Outcome>(
      'CORRUPT/bad-offset',
    );
    // data_size > allocated_size
    expect(reason(build([NON_RESIDENT], (r) => (r[d + 0x32] = 0x09)))).toBe<Outcome>(
      'CORRUPT/bad-size',
    );
    // 64-bit value beyond 2^53
    expect(reason(build([NON_RESIDENT], (r) => (r[d + 0x2f] = 0x40)))).toBe<Outcome>(
      'CORRUPT/too-large',
    );
  });
});
