import { describe, expect, it } from 'vitest';
import {
  CorruptError,
  DirtyFilesystemError,
  DiskubeError,
  hasErrorCode,
  InvalidArgumentError,
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

  const classes = [
    ['CORRUPT', CorruptError],
    ['UNSUPPORTED', UnsupportedError],
    ['DIRTY', DirtyFilesystemError],
    ['IO', IoError],
    ['INVALID_ARGUMENT', InvalidArgumentError],
  ] as const;

  for (const [code, Class] of classes) {
    for (const [otherCode, Other] of classes) {
      const same = code === otherCode;
      it(`${Other.name}.isInstance(new ${Class.name}()) is ${same}`, () => {
        expect(Other.isInstance(new Class('x'))).toBe(same);
      });
    }
    it(`DiskubeError.isInstance(new ${Class.name}()) is true`, () => {
      expect(DiskubeError.isInstance(new Class('x'))).toBe(true);
      expect(new Class('x').code).toBe(code);
    });
    it(`${Class.name}.isInstance is false for plain errors and non-objects`, () => {
      expect(Class.isInstance(new Error('x'))).toBe(false);
      expect(Class.isInstance(null)).toBe(false);
      expect(Class.isInstance(undefined)).toBe(false);
      expect(Class.isInstance(code)).toBe(false);
      expect(Class.isInstance({ code })).toBe(false);
    });
    it(`${Class.name}.isInstance recognises a ${code} error from another package copy`, () => {
      const foreign = Object.assign(new Error('x'), {
        [Symbol.for('diskube.error')]: true,
        [Symbol.for(`diskube.error.${code}`)]: true,
        code,
      });
      expect(Class.isInstance(foreign)).toBe(true);
      expect(DiskubeError.isInstance(foreign)).toBe(true);
      for (const [otherCode, Other] of classes) {
        if (otherCode !== code) expect(Other.isInstance(foreign)).toBe(false);
      }
    });
  }

  it('a bare DiskubeError matches no subclass, even with a subclass code', () => {
    const bare = new DiskubeError('CORRUPT', 'x');
    expect(DiskubeError.isInstance(bare)).toBe(true);
    for (const [, Class] of classes) expect(Class.isInstance(bare)).toBe(false);
    expect(hasErrorCode(bare, 'CORRUPT')).toBe(true);
  });

  it('keeps the cause', () => {
    const cause = new Error('EIO');
    expect(new IoError('read failed', { cause }).cause).toBe(cause);
  });
});
