import { hasErrorCode } from 'diskube';
import { describe, expect, it } from 'vitest';
import { outputFormat } from './restore.js';

describe('restore --format', () => {
  it('defaults from the output extension, case-insensitively, else raw', () => {
    expect(outputFormat('vm/disk.qcow2')).toBe('qcow2');
    expect(outputFormat('DISK.VDI')).toBe('vdi');
    expect(outputFormat('disk.img')).toBe('raw');
    expect(outputFormat('/dev/sdb')).toBe('raw');
    expect(outputFormat('disk.qcow2.bak')).toBe('raw');
  });

  it('an explicit --format wins over the extension', () => {
    expect(outputFormat('disk.img', 'qcow2')).toBe('qcow2');
    expect(outputFormat('disk.qcow2', 'raw')).toBe('raw');
  });

  it('refuses unknown formats as a usage error', () => {
    try {
      outputFormat('disk.vmdk', 'vmdk');
      expect.unreachable();
    } catch (e) {
      expect(hasErrorCode(e, 'INVALID_ARGUMENT')).toBe(true);
      expect((e as { reason: string }).reason).toBe('usage');
    }
  });
});
