import { Writable } from 'node:stream';
import { CorruptError, DirtyFilesystemError, IoError, UnsupportedError } from 'diskube';
import { describe, expect, it } from 'vitest';
import { handleError } from './handle-error.js';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

describe('handleError', () => {
  it('maps each error code to its documented exit code', () => {
    const cases: Array<[Error, number]> = [
      [new CorruptError('x', { structure: 'ext4 superblock', offset: 1024 }), 3],
      [new UnsupportedError('x'), 4],
      [new DirtyFilesystemError('x'), 5],
      [new IoError('x'), 6],
      [new Error('boom'), 1],
    ];
    for (const [error, code] of cases) expect(handleError(error, capture().stream)).toBe(code);
  });

  it('prints one line with the structure and offset, and a hint for dirty filesystems', () => {
    const out = capture();
    handleError(
      new DirtyFilesystemError('journal needs recovery', {
        structure: 'ext4 superblock',
        offset: 1024,
      }),
      out.stream,
    );
    expect(out.text()).toMatch(
      /^diskube: journal needs recovery \(ext4 superblock at byte 1024\)\n/,
    );
    expect(out.text()).toContain('--full-copy-on-doubt');
    expect(out.text()).not.toMatch(/\n\s+at /);
  });
});
