import { CorruptError, DirtyFilesystemError, IoError } from 'diskube';
import { describe, expect, it } from 'vitest';
import { describeRefusal, describeWarning } from './messages.js';

describe('describeRefusal', () => {
  it('explains a dirty filesystem and names the way out', () => {
    const refusal = describeRefusal(
      new DirtyFilesystemError('the journal needs recovery', {
        structure: 'ext4 superblock',
        offset: 1024,
        reason: 'needs-recovery',
      }),
    );
    expect(refusal).toMatchObject({ code: 'DIRTY', title: 'Refused: the filesystem is not clean' });
    expect(refusal.advice).toMatch(/not cleanly unmounted.*--full-copy-on-doubt/s);
    expect(refusal.detail).toBe('the journal needs recovery (ext4 superblock at byte 1024)');
  });

  it('tells a hibernated Windows apart from a merely dirty volume', () => {
    const refusal = describeRefusal(
      new DirtyFilesystemError('Windows is hibernated', { reason: 'hibernated' }),
    );
    expect(refusal.advice).toMatch(/^Windows is hibernated on this volume/);
    expect(refusal.advice).toContain('shut it down fully');
  });

  it('has words for corrupt input, read failures and bugs', () => {
    expect(describeRefusal(new CorruptError('bad magic')).title).toBe(
      'Refused: the image is damaged',
    );
    expect(describeRefusal(new IoError('short read')).code).toBe('IO');
    expect(describeRefusal(new TypeError('x is undefined'))).toMatchObject({
      code: 'INTERNAL',
      detail: 'x is undefined',
    });
  });
});

describe('describeWarning', () => {
  it('gives plain words beside the library message, where it has them', () => {
    expect(
      describeWarning({ code: 'assumed-used', reason: 'needs-recovery', message: 'ext4: …' }),
    ).toEqual({
      plain: 'Its allocation maps cannot be trusted, so all of it is kept (full copy on doubt).',
      detail: 'ext4: …',
    });
    expect(describeWarning({ code: 'something-new', message: 'as is' })).toEqual({
      plain: null,
      detail: 'as is',
    });
  });
});
