import { afterEach, describe, expect, it, vi } from 'vitest';
import { missingTools, requireTools } from './testing.js';

describe('requireTools', () => {
  const ci = process.env.CI;
  afterEach(() => {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
    vi.restoreAllMocks();
  });

  it('is true when every tool is installed', () => {
    expect(requireTools(['sh', 'ls'])).toBe(true);
  });

  it('skips locally with a loud line naming the Debian package', () => {
    process.env.CI = 'false';
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(requireTools(['sh', 'partclone.nosuchfs'], 'nosuchfs tests')).toBe(false);
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /SKIPPED: nosuchfs tests need partclone\.nosuchfs: install partclone/,
    );
  });

  it('throws under CI=true, so the test file fails', () => {
    process.env.CI = 'true';
    expect(() => requireTools(['mkimage-no-such-tool'], 'x tests')).toThrow(
      /required under CI=true/,
    );
  });

  it('missingTools lists only the missing ones', async () => {
    expect(await missingTools(['sh', 'mkimage-no-such-tool'])).toEqual(['mkimage-no-such-tool']);
  });
});
