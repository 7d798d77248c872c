import { describe, expect, it } from 'vitest';
import { BuildError, ToolMissingError } from './errors.js';
import { hasTool, run, TOOL_PACKAGES } from './tools.js';

describe('run', () => {
  it('names the Debian package of a missing tool', async () => {
    const e = await run('mkimage-no-such-tool', []).catch((x: unknown) => x);
    expect(ToolMissingError.isInstance(e)).toBe(true);
    expect((e as ToolMissingError).code).toBe('tool-missing');
    expect(await hasTool('mkimage-no-such-tool')).toBe(false);
    expect(TOOL_PACKAGES).toMatchObject({
      mke2fs: 'e2fsprogs',
      mkntfs: 'ntfs-3g',
      'mkfs.vfat': 'dosfstools',
      mcopy: 'mtools',
      sfdisk: 'fdisk',
      sgdisk: 'gdisk',
    });
    expect(new ToolMissingError('mkntfs', 'ntfs-3g').message).toBe(
      "mkntfs not found: install the Debian package 'ntfs-3g'",
    );
  });

  it('turns a failing tool into a BuildError carrying its stderr', async () => {
    const e = await run('sh', ['-c', 'echo boom >&2; exit 3']).catch((x: unknown) => x);
    expect(BuildError.isInstance(e)).toBe(true);
    expect((e as BuildError).message).toContain('exit 3');
    expect((e as BuildError).stderr).toBe('boom\n');
  });
});
