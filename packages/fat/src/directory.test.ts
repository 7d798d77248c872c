import { describe, expect, it } from 'vitest';
import { parseDirectory } from './directory.js';

/** A 32-byte short entry: 11-byte name, attribute, first cluster (hi, lo), size. */
function entry(name: string, attr: number, cluster: number, size: number): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  b.set(
    [...name.padEnd(11)].map((c) => c.charCodeAt(0)),
    0,
  );
  b[0x0b] = attr;
  v.setUint16(0x14, cluster >>> 16, true);
  v.setUint16(0x1a, cluster & 0xffff, true);
  v.setUint32(0x1c, size, true);
  return b;
}

describe('parseDirectory', () => {
  const dir = (...entries: Uint8Array[]) => {
    const out = new Uint8Array(32 * (entries.length + 1));
    for (const [i, e] of entries.entries()) out.set(e, 32 * i);
    return out;
  };

  it('lists files and subdirectories, skipping labels, long names, deleted entries, . and ..', () => {
    const deleted = entry('OLD     TXT', 0x20, 9, 100);
    deleted[0] = 0xe5;
    const bytes = dir(
      entry('VOLUME     ', 0x08, 0, 0),
      entry('.', 0x10, 5, 0),
      entry('..', 0x10, 0, 0),
      entry('Ab\0\0\0\0\0\0\0\0\0', 0x0f, 0, 0),
      deleted,
      entry('README  TXT', 0x20, 0x12_0007, 1234),
      entry('SUB        ', 0x10, 8, 0),
    );
    const fat16 = parseDirectory(bytes, false, 4096);
    expect(fat16.done).toBe(true);
    expect(fat16.entries).toEqual([
      { name: 'README.TXT', directory: false, firstCluster: 7, size: 1234, offset: 4096 + 5 * 32 },
      { name: 'SUB', directory: true, firstCluster: 8, size: 0, offset: 4096 + 6 * 32 },
    ]);
    // FAT32 adds DIR_FstClusHI.
    expect(parseDirectory(bytes, true).entries[0]!.firstCluster).toBe(0x12_0007);
  });

  it('stops at the end marker; a full directory is not done', () => {
    const full = entry('A       BIN', 0x20, 3, 1);
    expect(parseDirectory(full, false)).toMatchObject({
      done: false,
      entries: [{ name: 'A.BIN' }],
    });
    const ended = dir(entry('A       BIN', 0x20, 3, 1));
    expect(parseDirectory(ended, false).done).toBe(true);
  });
});
