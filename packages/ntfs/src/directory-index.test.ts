import { describe, expect, it } from 'vitest';
import { parseIndexBlock, parseIndexRoot } from './directory-index.js';
import { hex, protect } from './hex.test-support.js';

// An index entry for "hiberfil.sys" (record 0x40, sequence 2) in directory 5.
const NAME = Buffer.from('hiberfil.sys', 'utf16le').toString('hex');
const ENTRY = `
  4000000000000200 7000 5a00 0000 0000
  0500000000000500 ${'00'.repeat(0x38)} 0c 01 ${NAME} 000000000000`;
const END = '0000000000000000 1000 0000 0200 0000';

describe('parseIndexRoot', () => {
  it('parses the root header and its FILE_NAME entries', () => {
    const entries = hex(`${ENTRY} ${END}`);
    const value = hex(
      `30000000 01000000 00100000 01000000 10000000 ${(0x10 + entries.length).toString(16).padStart(2, '0')}000000 00000000 00000000`,
      0x20 + entries.length,
    );
    value.set(entries, 0x20);
    expect(parseIndexRoot(value, 0)).toEqual({
      indexBlockSize: 4096,
      entries: [{ record: 0x40, sequence: 2, parentRecord: 5, name: 'hiberfil.sys' }],
    });
  });

  it('rejects an index length past the value and entries without an end entry', () => {
    const value = hex('30000000 01000000 00100000 01000000 10000000 ff000000', 0x30);
    expect(() => parseIndexRoot(value, 0)).toThrow(
      expect.objectContaining({ reason: 'length-mismatch' }),
    );
    const noEnd = hex('30000000 01000000 00100000 01000000 10000000 10000000', 0x30);
    expect(() => parseIndexRoot(noEnd, 0)).toThrow(
      expect.objectContaining({ reason: 'truncated' }),
    );
    const badBlock = hex('30000000 01000000 00300000', 0x30);
    expect(() => parseIndexRoot(badBlock, 0)).toThrow(
      expect.objectContaining({ reason: 'bad-size' }),
    );
  });
});

describe('parseIndexBlock', () => {
  it('applies fixups to an INDX block and parses its entries', () => {
    const block = hex(
      '494e4458 2800 0900 0000000000000000 0000000000000000 28000000 00000000 00000000 00000000 0100',
      4096,
    );
    const entries = hex(`${ENTRY} ${END}`);
    block.set(entries, 0x40);
    new DataView(block.buffer).setUint32(0x1c, 0x28 + entries.length, true);
    protect(block);
    expect(parseIndexBlock(block, 0).map((e) => e.name)).toEqual(['hiberfil.sys']);
    const torn = block.slice();
    torn[2046] = torn[2046]! ^ 0xff;
    expect(() => parseIndexBlock(torn, 0)).toThrow(
      expect.objectContaining({ code: 'CORRUPT', reason: 'fixup' }),
    );
    const notIndx = block.slice();
    notIndx[0] = 0;
    expect(() => parseIndexBlock(notIndx, 0)).toThrow(
      expect.objectContaining({ reason: 'bad-magic' }),
    );
  });
});
