import { crc32c, hasErrorCode, memorySource } from '@diskube/core';
import { deflateSync, zlibSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { inflateRaw, inflateZlib, unzstd } from './decompress.js';
import { ByteLru } from './lru.js';
import { readStructure } from './read.js';
import { parseVmdkDescriptor } from './vmdk.js';

const hex = (s: string) =>
  Uint8Array.from(
    s
      .replace(/\s+/g, '')
      .match(/../g)!
      .map((h) => Number.parseInt(h, 16)),
  );
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return hasErrorCode(e, 'CORRUPT') ? (e as { reason: string }).reason : String(e);
  }
  return 'no error';
};

describe('crc32c', () => {
  it('matches the RFC 3720 check value', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  });
});

describe('readStructure', () => {
  it('refuses structures outside the file or above the limit without allocating', async () => {
    const src = memorySource(new Uint8Array(1000));
    await expect(readStructure(src, 990, 20, 's')).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'out-of-range',
    });
    await expect(readStructure(src, 0, 2 ** 40, 's')).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'too-large',
    });
  });
});

describe('decompression', () => {
  const data = new TextEncoder().encode('abcdefgh'.repeat(8192));
  it('inflates raw deflate ignoring trailing sector padding', () => {
    const packed = deflateSync(data);
    const padded = new Uint8Array(packed.length + 300);
    padded.set(packed);
    expect(inflateRaw(padded, data.length, 's', 0)).toEqual(data);
    expect(code(() => inflateRaw(packed, data.length + 1, 's', 0))).toBe('bad-compressed-data');
    expect(code(() => inflateRaw(new Uint8Array(64).fill(0xff), 100, 's', 0))).toBe(
      'bad-compressed-data',
    );
  });

  it('inflates zlib streams and rejects a bad zlib header', () => {
    expect(inflateZlib(zlibSync(data), data.length, 's', 0)).toEqual(data);
    expect(code(() => inflateZlib(deflateSync(data), data.length, 's', 0))).toBe(
      'bad-compressed-data',
    );
  });

  it('decodes a zstd frame followed by padding', () => {
    // `printf 'hello hello hello hello ' | zstd -19 --no-check | xxd -p`, then zero padding.
    const frame = hex('28b52ffd00686500003068656c6c6f200100f14a11');
    const text = new TextEncoder().encode('hello hello hello hello ');
    expect(unzstd(Uint8Array.from([...frame, ...new Uint8Array(40)]), text.length, 's', 0)).toEqual(
      text,
    );
    expect(code(() => unzstd(frame, text.length + 1, 's', 0))).toBe('bad-compressed-data');
    expect(code(() => unzstd(new Uint8Array(16), 10, 's', 0))).toBe('bad-compressed-data');
  });
});

describe('ByteLru', () => {
  it('evicts least recently used entries beyond its byte budget and shares in-flight loads', async () => {
    const lru = new ByteLru(300);
    let loads = 0;
    const load = (n: number) => async () => {
      loads++;
      return new Uint8Array(100).fill(n);
    };
    const [a, b] = await Promise.all([lru.get(1, load(1)), lru.get(1, load(1))]);
    expect(a).toBe(b);
    expect(loads).toBe(1);
    await lru.get(2, load(2));
    await lru.get(3, load(3));
    await lru.get(1, load(1)); // 1 is now most recent
    await lru.get(4, load(4)); // evicts 2
    expect(lru.size).toBe(300);
    loads = 0;
    await lru.get(1, load(1));
    await lru.get(2, load(2));
    expect(loads).toBe(1);
  });
});

describe('VMDK descriptor', () => {
  it('parses extents, create type and parent', () => {
    const d = parseVmdkDescriptor(
      [
        '# Disk DescriptorFile',
        'version=1',
        'CID=12345678',
        'parentCID=ffffffff',
        'createType="monolithicFlat"',
        '',
        '# Extent description',
        'RW 131072 FLAT "disk-flat.vmdk" 0',
        'RDONLY 2048 ZERO',
        'RW 4096 SPARSE "disk-s002.vmdk"',
      ].join('\n'),
    );
    expect(d.createType).toBe('monolithicFlat');
    expect(d.parentCID).toBe('ffffffff');
    expect(d.extents).toEqual([
      { access: 'RW', sectors: 131072, type: 'FLAT', file: 'disk-flat.vmdk', offset: 0 },
      { access: 'RDONLY', sectors: 2048, type: 'ZERO', file: undefined, offset: 0 },
      { access: 'RW', sectors: 4096, type: 'SPARSE', file: 'disk-s002.vmdk', offset: 0 },
    ]);
  });

  it('refuses raw-device extents', () => {
    expect(() => parseVmdkDescriptor('RW 10 VMFSRDM "x"')).toThrow(/not supported/);
  });
});
