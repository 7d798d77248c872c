import { describe, expect, it } from 'vitest';
import { parseQcow2Header } from './qcow2-header.js';
import { parseVdiHeader } from './vdi.js';
import { parseVhdFooter } from './vhd.js';
import { parseVmdkSparseHeader } from './vmdk-header.js';

// Single structures built field by field (the layouts in FORMAT.md), checked against the
// parsers; the real-image tests cover the same parsers on qemu-img output.

function qcow2Header(version: number, patch?: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(112);
  const v = new DataView(b.buffer);
  v.setUint32(0x00, 0x514649fb);
  v.setUint32(0x04, version);
  v.setUint32(0x14, 16); // 64 KiB clusters
  v.setBigUint64(0x18, 1n << 30n); // 1 GiB
  v.setUint32(0x24, 2); // L1 entries: one maps 512 MiB
  v.setBigUint64(0x28, 0x30000n);
  v.setBigUint64(0x30, 0x10000n); // refcount table: one cluster after the header
  v.setUint32(0x38, 1);
  if (version === 3) v.setUint32(0x64, 112);
  patch?.(v);
  return b;
}

const fails = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return `${(e as { code: string }).code}/${(e as { reason: string }).reason}`;
  }
};

describe('parseQcow2Header', () => {
  it('reads v2 and v3 headers', () => {
    expect(parseQcow2Header(qcow2Header(2).subarray(0, 72))).toMatchObject({
      version: 2,
      clusterSize: 65536,
      size: 2 ** 30,
      l1Size: 2,
      l1TableOffset: 0x30000,
      compressionType: 'deflate',
    });
    const zstd = qcow2Header(3, (v) => {
      v.setBigUint64(0x48, 1n << 3n);
      v.setUint8(0x68, 1);
    });
    expect(parseQcow2Header(zstd).compressionType).toBe('zstd');
  });

  it('refuses what it cannot read', () => {
    expect(fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setUint32(0x24, 1))))).toBe(
      'CORRUPT/table-too-small',
    );
    expect(
      fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setBigUint64(0x28, 0x30001n)))),
    ).toBe('CORRUPT/unaligned');
    expect(fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setUint32(0x64, 100))))).toBe(
      'CORRUPT/bad-header-length',
    );
    expect(fails(() => parseQcow2Header(qcow2Header(3).subarray(0, 80)))).toBe('CORRUPT/truncated');
    expect(fails(() => parseQcow2Header(qcow2Header(1)))).toBe('UNSUPPORTED/version');
    expect(fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setUint32(0x38, 0))))).toBe(
      'CORRUPT/missing',
    );
    expect(fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setBigUint64(0x30, 0n))))).toBe(
      'CORRUPT/overlap',
    );
    expect(
      fails(() => parseQcow2Header(qcow2Header(3, (v) => v.setBigUint64(0x30, 0x10200n)))),
    ).toBe('CORRUPT/unaligned');
  });
});

describe('parseVhdFooter', () => {
  function footer(type: number): Uint8Array {
    const b = new Uint8Array(512);
    const v = new DataView(b.buffer);
    b.set(new TextEncoder().encode('conectix'));
    v.setUint32(0x0c, 0x00010000);
    v.setBigUint64(0x10, 0xffffffffffffffffn);
    v.setBigUint64(0x30, 10n << 20n);
    v.setUint32(0x3c, type);
    let sum = 0;
    for (const x of b) sum += x;
    v.setUint32(0x40, ~sum >>> 0);
    return b;
  }
  it('reads a fixed footer and checks its checksum', () => {
    expect(parseVhdFooter(footer(2), 0)).toMatchObject({ currentSize: 10 << 20, diskType: 2 });
    const bad = footer(2);
    bad[0x30] = 1;
    expect(fails(() => parseVhdFooter(bad, 0))).toBe('CORRUPT/checksum');
  });
});

describe('parseVdiHeader', () => {
  it('reads a dynamic v1.1 header and refuses a block map inside the header', () => {
    const b = new Uint8Array(512);
    const v = new DataView(b.buffer);
    v.setUint32(0x40, 0xbeda107f, true);
    v.setUint16(0x44, 1, true);
    v.setUint16(0x46, 1, true);
    v.setUint32(0x48, 0x190, true);
    v.setUint32(0x4c, 1, true);
    v.setUint32(0x154, 0x200, true);
    v.setUint32(0x158, 0x400, true);
    v.setBigUint64(0x170, 4n << 20n, true);
    v.setUint32(0x178, 1 << 20, true);
    v.setUint32(0x180, 4, true);
    expect(parseVdiHeader(b)).toMatchObject({ imageType: 'dynamic', blocks: 4, offsetData: 0x400 });
    v.setUint32(0x154, 0x100, true);
    expect(fails(() => parseVdiHeader(b))).toBe('CORRUPT/overlap');
  });
});

describe('parseVmdkSparseHeader', () => {
  it('reads GD_AT_END as a footer reference', () => {
    const b = new Uint8Array(512);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0x564d444b, true);
    v.setUint32(4, 3, true);
    v.setUint32(8, (1 << 16) | (1 << 17) | 1, true);
    v.setBigUint64(0x0c, 2048n, true);
    v.setBigUint64(0x14, 128n, true);
    v.setUint32(0x2c, 512, true);
    v.setBigUint64(0x38, 0xffffffffffffffffn, true);
    v.setUint16(0x4d, 1, true);
    expect(parseVmdkSparseHeader(b)).toMatchObject({
      gdOffset: undefined,
      compressed: true,
      markers: true,
      grainSize: 128,
    });
    v.setUint16(0x4d, 2, true);
    expect(fails(() => parseVmdkSparseHeader(b))).toBe('UNSUPPORTED/compression-type');
  });
});
