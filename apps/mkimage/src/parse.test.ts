import { describe, expect, it } from 'vitest';
import { SpecError } from './errors.js';
import { parseSpec } from './parse.js';

function specError(text: string): SpecError {
  try {
    parseSpec(text);
  } catch (e) {
    if (SpecError.isInstance(e)) return e;
    throw e;
  }
  throw new Error('expected a SpecError');
}

describe('parseSpec', () => {
  it('parses the common.md example', () => {
    const spec = parseSpec(`
disk 64M
  filesystem ext4 block=1K features=^has_journal,^64bit label=root
    prefill random seed=7
    file /etc/hostname "vm-01"
    file /data/blob 4M random seed=1
    files /many 200 small
    delete /data/blob
`);
    expect(spec.size).toBe(64 * 2 ** 20);
    expect(spec.table).toBe('none');
    expect(spec.partitions).toEqual([]);
    const fs = spec.filesystem!;
    expect(fs.type).toBe('ext4');
    expect(fs.options).toEqual({ block: '1K', features: '^has_journal,^64bit', label: 'root' });
    expect(fs.content.map((c) => c.op)).toEqual(['prefill', 'file', 'file', 'files', 'delete']);
    expect(fs.content[0]).toMatchObject({ op: 'prefill', gen: { kind: 'random', seed: 7 } });
    expect(fs.content[1]).toMatchObject({
      op: 'file',
      path: '/etc/hostname',
      size: 5,
      gen: { kind: 'literal', text: 'vm-01' },
      pos: { line: 5, column: 5 },
    });
    expect(fs.content[2]).toMatchObject({ size: 4 * 2 ** 20, gen: { kind: 'random', seed: 1 } });
    expect(fs.content[3]).toMatchObject({ op: 'files', dir: '/many', count: 200, size: 'small' });
  });

  it('parses MBR with primary, extended and logical partitions', () => {
    const spec = parseSpec(`disk 1G mbr   # comment after code
  partition 100M ext4 bootable type=0x83
  extended rest
    # comment line inside a block
    partition 200M fat fat=16 label="MY DISK"
    partition rest ntfs cluster=64K
`);
    expect(spec.table).toBe('mbr');
    expect(spec.partitions).toHaveLength(2);
    const [p1, ext] = spec.partitions;
    expect(p1).toMatchObject({
      kind: 'partition',
      size: 100 * 2 ** 20,
      attrs: { bootable: true, type: '0x83' },
    });
    expect(p1!.kind === 'partition' && p1!.filesystem.options).toEqual({});
    if (ext?.kind !== 'extended') throw new Error('expected an extended partition');
    expect(ext.size).toBe('rest');
    expect(ext.partitions.map((p) => [p.size, p.filesystem.type, p.filesystem.options])).toEqual([
      [200 * 2 ** 20, 'fat', { fat: '16', label: 'MY DISK' }],
      ['rest', 'ntfs', { cluster: '64K' }],
    ]);
  });

  it('parses modify operations and escapes', () => {
    const spec = parseSpec(`disk 8M gpt
  partition rest ext2 name=root
    file /a 10K text
    append /a "tail\\n\\x41"
    overwrite /a 100 2K random seed=4
    truncate /a 1K
    file "/with space" 0 zeros
`);
    const p = spec.partitions[0]!;
    if (p.kind !== 'partition') throw new Error('expected partition');
    expect(p.attrs.name).toBe('root');
    expect(p.filesystem.content).toMatchObject([
      { op: 'file', size: 10240, gen: { kind: 'text' } },
      { op: 'append', size: 6, gen: { kind: 'literal', text: 'tail\nA' } },
      { op: 'overwrite', offset: 100, size: 2048, gen: { kind: 'random', seed: 4 } },
      { op: 'truncate', size: 1024 },
      { op: 'file', path: '/with space', size: 0, gen: { kind: 'zeros' } },
    ]);
  });

  it.each([
    ['', 1, 1, 'empty spec'],
    ['disk 64Q', 1, 6, 'expected a disk size'],
    ['disk 64M zfs', 1, 10, 'expected mbr or gpt'],
    ['disk 64M\n  filesystem zfs', 2, 14, 'unknown filesystem type'],
    ['disk 64M\n  filesystem ext4 blok=1K', 2, 19, "unknown option 'blok'"],
    ['disk 64M\n  filesystem ext4 block=3K', 2, 19, 'block must be one of'],
    ['disk 64M\n  filesystem ext4\n    file etc/x "a"', 3, 10, 'path must be absolute'],
    ['disk 64M\n  filesystem ext4\n    file /a/../b "a"', 3, 10, "'..'"],
    ['disk 64M\n  filesystem ext4\n    file /x "abc', 3, 13, 'unterminated string'],
    ['disk 64M\n  filesystem ext4\n    frobnicate /x', 3, 5, "unknown content line 'frobnicate'"],
    ['disk 64M\n  filesystem ext4\n    file /x', 3, 12, "'file' expects"],
    ['disk 64M\n  filesystem ext4\n    file /x 1M', 3, 15, "'file' expects random, text or zeros"],
    [
      'disk 64M\n  filesystem ext4\n    file /a "x"\n    prefill random seed=1',
      4,
      5,
      'prefill must come before',
    ],
    ['disk 64M\n  filesystem ext4\n   file /a "x"\n    file /b "y"', 4, 5, 'takes no children'],
    ['disk 64M\n  filesystem ext4\n    file /a "x"\n   file /b "y"', 4, 4, 'indentation'],
    ['disk 64M\n\tfilesystem ext4', 2, 1, 'tabs'],
    ['disk 64M\n  partition 10M ext4', 2, 3, 'exactly one "filesystem'],
    ['disk 64M gpt\n  filesystem ext4', 2, 3, "use 'partition"],
    ['disk 64M gpt\n  extended 10M', 2, 3, 'only in mbr'],
    [
      'disk 64M mbr\n  partition 1M ext4\n  partition 1M ext4\n  partition 1M ext4\n  partition 1M ext4\n  partition 1M ext4',
      6,
      3,
      'at most 4 primary',
    ],
    ['disk 64M mbr\n  partition 1M swap\n    file /x "a"', 3, 5, 'swap takes no content'],
    ['disk 64M mbr\n  partition 1M raw\n    dir /x', 3, 5, 'raw takes only prefill'],
    ['disk 64M mbr\n  partition 1M ext4 name=x', 2, 21, "unknown option 'name'"],
    ['disk 64M gpt\n  partition 1M ext4 type=zz', 2, 21, 'GPT type must be'],
    ['disk 64M\n  filesystem fat fat=24', 2, 18, 'fat must be 12, 16 or 32'],
    ['disk 64M\n  filesystem ext4\n    files /d 0 small', 3, 14, 'file count'],
    ['disk 64M\n  filesystem ext4 label=x label=y', 2, 27, 'given twice'],
    ['disk 64M\n  filesystem ext4\n    file /x 1M random seed=-1', 3, 23, 'seed must be'],
    ['disk 64M\n  filesystem ext4\n    file /x "a\\q"', 3, 15, 'unknown escape'],
    ['disk 64M\ndisk 32M\n  filesystem ext4', 2, 1, 'only one disk'],
    ['disk 64M\n  filesystem ext4\n    dirty\n    file /a "x"', 4, 5, "'dirty' must be the last"],
    ['disk 128M\n  filesystem btrfs compress=gzip', 2, 20, 'compress must be'],
    ['disk 128M\n  filesystem btrfs compress=zstd:16', 2, 20, 'compress must be'],
    ['disk 128M\n  filesystem btrfs subvol=a,../b', 2, 20, 'subvol must be'],
    ['disk 128M\n  filesystem btrfs subvol=default:a,default-ro:b', 2, 20, 'at most one default'],
    ['disk 128M\n  filesystem btrfs subvol=rw:a,,b', 2, 20, 'subvol must be'],
  ])('rejects %j at line %i column %i', (text, line, column, message) => {
    const e = specError(text);
    expect(e.code).toBe('spec');
    expect([e.line, e.column]).toEqual([line, column]);
    expect(e.reason).toContain(message);
    expect(e.message).not.toContain('\n');
  });
});
