import { describe, expect, it } from 'vitest';
import {
  CorruptError,
  DirtyFilesystemError,
  DiskubeError,
  hasErrorCode,
  IoError,
  UnsupportedError,
} from './errors.js';

describe('errors', () => {
  it('carry a stable code, structure, offset and reason', () => {
    const error = new CorruptError('bad magic 0x0000', {
      structure: 'ext4 superblock',
      offset: 1080,
      reason: 'bad-magic',
    });
    expect(error.code).toBe('CORRUPT');
    expect(error.structure).toBe('ext4 superblock');
    expect(error.offset).toBe(1080);
    expect(error.reason).toBe('bad-magic');
    expect(error.message).toContain('at byte 1080');
    expect(error).toBeInstanceOf(DiskubeError);
  });

  it('each class has its own code', () => {
    expect(new UnsupportedError('x').code).toBe('UNSUPPORTED');
    expect(new DirtyFilesystemError('x').code).toBe('DIRTY');
    expect(new IoError('x').code).toBe('IO');
  });

  it('isInstance recognises errors from another copy of the package', () => {
    // A structurally identical object made by a duplicate copy carries the same registered symbol.
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('diskube.error')]: true,
      code: 'IO',
    });
    expect(DiskubeError.isInstance(foreign)).toBe(true);
    expect(DiskubeError.isInstance(new Error('x'))).toBe(false);
    expect(hasErrorCode(new IoError('x'), 'IO')).toBe(true);
    expect(hasErrorCode(new IoError('x'), 'CORRUPT')).toBe(false);
  });

  it('keeps the cause', () => {
    const cause = new Error('EIO');
    expect(new IoError('read failed', { cause }).cause).toBe(cause);
  });
});
