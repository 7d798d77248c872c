import { describe, expect, it } from 'vitest';
import type { FilesystemSpec } from './ast.js';
import { segmentsLength } from './content.js';
import { SpecError } from './errors.js';
import { planContent } from './model.js';
import { parseSpec } from './parse.js';

const fsOf = (body: string, type = 'ext4'): FilesystemSpec =>
  parseSpec(`disk 8M\n  filesystem ${type}\n${body}`).filesystem!;

function planError(body: string, type?: string): SpecError {
  try {
    planContent(fsOf(body, type), type === 'fat');
  } catch (e) {
    if (SpecError.isInstance(e)) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('planContent', () => {
  it('creates parents, deletes recursively and lists what remains', () => {
    const plan = planContent(
      fsOf(`    file /a/b/c "x"
    files /a/many 3 10
    file /keep 1K zeros
    delete /a
    dir /d
`),
    );
    expect(plan.actions.map((a) => `${a.a} ${a.path}`)).toEqual([
      'mkdir /a',
      'mkdir /a/b',
      'write /a/b/c',
      'mkdir /a/many',
      'write /a/many/f0000',
      'write /a/many/f0001',
      'write /a/many/f0002',
      'write /keep',
      'rm /a/b/c',
      'rm /a/b',
      'rm /a/many/f0000',
      'rm /a/many/f0001',
      'rm /a/many/f0002',
      'rm /a/many',
      'rm /a',
      'mkdir /d',
    ]);
    expect(plan.files.map((f) => f.path)).toEqual(['/keep']);
    expect(plan.dirs).toEqual(['/d']);
  });

  it('gives small files deterministic sizes from 1 to 3072 bytes', () => {
    const sizes = (seed: number) =>
      planContent(fsOf(`    files /s 100 small seed=${seed}\n`)).files.map((f) =>
        segmentsLength(f.content),
      );
    const a = sizes(1);
    expect(sizes(1)).toEqual(a);
    expect(sizes(2)).not.toEqual(a);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...a)).toBeLessThanOrEqual(3072);
    expect(new Set(a).size).toBeGreaterThan(50);
  });

  it('records old sizes for in-place changes', () => {
    const plan = planContent(fsOf('    file /f 10 zeros\n    append /f "ab"\n    truncate /f 4\n'));
    expect(plan.actions.slice(1)).toMatchObject([
      { a: 'pwrite', offset: 10, oldSize: 10 },
      { a: 'truncate', size: 4, oldSize: 12 },
    ]);
    expect(segmentsLength(plan.files[0]!.content)).toBe(4);
  });

  it.each([
    ['    delete /nope\n', 3, 'no such file or directory'],
    ['    file /a "x"\n    file /a "y"\n', 4, 'already exists'],
    ['    file /a "x"\n    file /a/b "y"\n', 4, '/a is a file'],
    ['    dir /d\n    append /d "x"\n', 4, 'it is a directory'],
    ['    truncate /x 1\n', 3, 'no such file'],
  ])('rejects %j at line %i', (body, line, message) => {
    const e = planError(body);
    expect([e.line, e.column]).toEqual([line, 5]);
    expect(e.reason).toContain(message);
  });

  it('treats FAT names case-insensitively', () => {
    expect(planError('    file /A.TXT "x"\n    file /a.txt "y"\n', 'fat').reason).toContain(
      'already exists',
    );
    expect(() => planContent(fsOf('    file /A.TXT "x"\n    file /a.txt "y"\n'))).not.toThrow();
  });

  it('deletes by glob within one path component', () => {
    const plan = planContent(
      fsOf('    files /d 12 1\n    file /d2/x "x"\n    delete /d/f00[!0]?\n    delete /d*/x\n'),
    );
    expect(plan.files.map((f) => f.path)).toEqual([
      '/d/f0000',
      '/d/f0001',
      '/d/f0002',
      '/d/f0003',
      '/d/f0004',
      '/d/f0005',
      '/d/f0006',
      '/d/f0007',
      '/d/f0008',
      '/d/f0009',
    ]);
    expect(planError('    delete /nothing*\n').reason).toContain('nothing matches');
  });

  it('writes a fragmented file in pieces between spacer files it removes', () => {
    const plan = planContent(fsOf('    file /big 40K random seed=1 fragments=5\n'));
    expect(plan.actions.map((a) => `${a.a} ${a.path}`)).toEqual([
      'write /big',
      'write /.mkimage-spacer-3-0',
      'pwrite /big',
      'write /.mkimage-spacer-3-1',
      'pwrite /big',
      'write /.mkimage-spacer-3-2',
      'pwrite /big',
      'write /.mkimage-spacer-3-3',
      'pwrite /big',
      'rm /.mkimage-spacer-3-0',
      'rm /.mkimage-spacer-3-1',
      'rm /.mkimage-spacer-3-2',
      'rm /.mkimage-spacer-3-3',
    ]);
    expect(plan.actions[1]).toMatchObject({ spacerAfter: { path: '/big', size: 8192 } });
    expect(plan.files).toHaveLength(1);
    expect(segmentsLength(plan.files[0]!.content)).toBe(40 * 1024);
  });
});
