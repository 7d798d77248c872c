import { describe, expect, it } from 'vitest';
import { fromHexRows } from './hex.test-support.js';
import { MMP_SEQ_CLEAN, parseMmp } from './mmp.js';
import type { ExtReason } from './reasons.js';

describe('parseMmp', () => {
  it('reads magic, sequence and node name', () => {
    const bytes = fromHexRows(1024, [
      '000: 50 4d 4d 00 50 4d 4d ff 00 00 00 00 00 00 00 00',
      '010: 76 6d 2d 30 31',
    ]);
    expect(parseMmp(bytes)).toEqual({ seq: MMP_SEQ_CLEAN, nodeName: 'vm-01' });
  });

  it('rejects a bad magic and a short buffer with CorruptError', () => {
    expect(() => parseMmp(new Uint8Array(1024), 4096)).toThrow(
      expect.objectContaining({
        code: 'CORRUPT',
        reason: 'bad-magic' satisfies ExtReason,
        offset: 4096,
      }),
    );
    expect(() => parseMmp(new Uint8Array(16))).toThrow(
      expect.objectContaining({ code: 'CORRUPT', reason: 'truncated' satisfies ExtReason }),
    );
  });
});
