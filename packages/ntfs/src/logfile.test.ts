import { describe, expect, it } from 'vitest';
import { type Outcome, restartPage } from './hex.test-support.js';
import { logFileState } from './logfile.js';

function head(...pages: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(8192 + 4096).fill(0xff);
  for (const [i, p] of pages.entries()) out.set(p, i * 4096);
  return out;
}

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return `${(error as { code: string }).code}/${(error as { reason: string }).reason}`;
  }
  return undefined;
}

describe('logFileState', () => {
  it('treats an all-0xFF log as empty', () => {
    expect(logFileState(new Uint8Array(65536).fill(0xff), 0)).toBe('empty');
  });

  it('reads clean and unclean restart areas', () => {
    const closed = restartPage({ lsn: 10, inUse: 0xffff, flags: 0 });
    const cleanFlag = restartPage({ lsn: 10, inUse: 0, flags: 2 });
    const open = restartPage({ lsn: 10, inUse: 0, flags: 0 });
    expect(logFileState(head(closed, closed), 0)).toBe('clean');
    expect(logFileState(head(cleanFlag, cleanFlag), 0)).toBe('clean');
    expect(logFileState(head(open, open), 0)).toBe('unclean');
    expect(
      logFileState(head(restartPage({ magic: 'CHKD', lsn: 1, inUse: 0xffff, flags: 0 })), 0),
    ).toBe('chkdsk');
  });

  it('follows the restart page with the higher current LSN', () => {
    const older = restartPage({ lsn: 5, inUse: 0xffff, flags: 0 });
    const newer = restartPage({ lsn: 9, inUse: 0, flags: 0 });
    expect(logFileState(head(older, newer), 0)).toBe('unclean');
    expect(logFileState(head(newer, older), 0)).toBe('unclean');
    expect(
      logFileState(
        head(
          restartPage({ lsn: 9, inUse: 0xffff, flags: 0 }),
          restartPage({ lsn: 5, inUse: 0, flags: 0 }),
        ),
        0,
      ),
    ).toBe('clean');
  });

  it('uses the second copy when the first is torn, and fails when neither is readable', () => {
    const torn = restartPage({ lsn: 9, inUse: 0xffff, flags: 0 });
    torn[1022] = torn[1022]! ^ 1;
    expect(logFileState(head(torn, restartPage({ lsn: 5, inUse: 0, flags: 0 })), 0)).toBe(
      'unclean',
    );
    expect(reason(() => logFileState(head(torn, torn), 0))).toBe<Outcome>('CORRUPT/logfile');
    expect(reason(() => logFileState(new Uint8Array(8192), 0))).toBe<Outcome>('CORRUPT/logfile');
    const badSize = restartPage({ lsn: 1, inUse: 0xffff, flags: 0 });
    badSize[0x11] = 0x30; // system_page_size 0x3000: not a power of two
    expect(reason(() => logFileState(head(badSize), 0))).toBe<Outcome>('CORRUPT/logfile');
    expect(reason(() => logFileState(new Uint8Array(100), 0))).toBe<Outcome>('CORRUPT/truncated');
  });
});
