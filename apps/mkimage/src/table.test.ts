import { describe, expect, it } from 'vitest';
import { SpecError } from './errors.js';
import { parseSpec } from './parse.js';
import { layout, sfdiskScript } from './table.js';

const M = 2 ** 20;

function layoutError(text: string): SpecError {
  try {
    layout(parseSpec(text));
  } catch (e) {
    if (SpecError.isInstance(e)) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('layout', () => {
  it('aligns GPT partitions to 1 MiB and stops rest before the backup GPT', () => {
    const lay = layout(parseSpec('disk 64M gpt\n  partition 10M ext4\n  partition rest swap\n'));
    expect(lay.partitions.map((p) => [p.index, p.offset, p.size, p.type])).toEqual([
      [1, M, 10 * M, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
      [2, 11 * M, 64 * M - 11 * M - 33 * 512, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F'],
    ]);
  });

  it('places logical partitions 1 MiB after their EBR and numbers them from 5', () => {
    const lay = layout(
      parseSpec(
        'disk 64M mbr\n  extended 40M\n    partition 10M fat fat=12\n    partition rest raw\n  partition rest ntfs type=0x17\n',
      ),
    );
    expect(lay.extended).toEqual({ index: 1, offset: M, size: 40 * M });
    expect(lay.partitions.map((p) => [p.index, p.offset, p.size, p.type])).toEqual([
      [5, 2 * M, 10 * M, '1'],
      [6, 13 * M, 28 * M, 'da'],
      [2, 41 * M, 23 * M, '17'],
    ]);
    const script = sfdiskScript(
      parseSpec('disk 64M mbr\n  partition 1M raw bootable\n'),
      layout(parseSpec('disk 64M mbr\n  partition 1M raw bootable\n')),
      () => '0123abcd-0000-4000-8000-000000000000',
    );
    expect(script).toContain('label-id: 0x0123abcd');
    expect(script).toContain('start=2048, size=2048, type=da, bootable');
  });

  it.each([
    ['disk 8M gpt\n  partition rest ext4\n  partition 1M ext4\n', 2, "'rest' must be the last"],
    ['disk 8M gpt\n  partition 8M ext4\n', 2, 'does not fit'],
    ['disk 8M mbr\n  partition 1000 ext4\n', 2, 'multiple of 512'],
    ['disk 3T mbr\n  partition 1M ext4\n', 1, 'at most 2T'],
  ])('rejects %j at line %i', (text, line, message) => {
    const e = layoutError(text);
    expect(e.line).toBe(line);
    expect(e.reason).toContain(message);
  });
});
