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
});
