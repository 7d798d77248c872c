import { describe, expect, it } from 'vitest';
import { parseAttributeList } from './attribute-list.js';
import { hex, type Outcome } from './hex.test-support.js';

// Two entries of $MFT's attribute list: $DATA VCN 0 in record 0, $DATA VCN 0x1234 in record
// 0x2a (sequence 3); then a named $DATA "$Bad" (length 0x28).
const LIST = `
  80000000 2000 00 1a 0000000000000000 0000000000000100 0000 000000000000
  80000000 2000 00 1a 3412000000000000 2a00000000000300 0100 000000000000
  80000000 2800 04 1a 0000000000000000 0800000000000800 0000 2400420061006400 000000000000`;

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return `${(error as { code: string }).code}/${(error as { reason: string }).reason}`;
  }
  return undefined;
}

describe('parseAttributeList', () => {
  it('parses entries with VCNs, references and names', () => {
    expect(parseAttributeList(hex(LIST), 0, 0)).toEqual([
      { type: 0x80, name: '', lowestVcn: 0, record: 0, sequence: 1 },
      { type: 0x80, name: '', lowestVcn: 0x1234, record: 0x2a, sequence: 3 },
      { type: 0x80, name: '$Bad', lowestVcn: 0, record: 8, sequence: 8 },
    ]);
  });

  it('stops at zero padding', () => {
    expect(parseAttributeList(hex(`${LIST} 00000000 00000000`), 0, 0)).toHaveLength(3);
  });

  it('rejects truncated entries, bad lengths and names outside an entry', () => {
    expect(reason(() => parseAttributeList(hex(LIST).subarray(0, 0x30), 0, 0))).toBe<Outcome>(
      'CORRUPT/truncated',
    );
    const zeroLength = hex(LIST);
    zeroLength[4] = 0;
    expect(reason(() => parseAttributeList(zeroLength, 0, 0))).toBe<Outcome>(
      'CORRUPT/length-mismatch',
    );
    const longName = hex(LIST);
    longName[0x40 + 6] = 0x20;
    expect(reason(() => parseAttributeList(longName, 0, 0))).toBe<Outcome>('CORRUPT/bad-offset');
    const negativeVcn = hex(LIST);
    negativeVcn.fill(0xff, 0x28, 0x30);
    expect(reason(() => parseAttributeList(negativeVcn, 0, 0))).toBe<Outcome>('CORRUPT/bad-vcn');
  });
});
