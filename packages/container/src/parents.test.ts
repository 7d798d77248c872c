import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BlockSource, DiskubeError, memorySource } from '@diskube/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  containerImage,
  execFileSync,
  guidBytes,
  haveQemuImg,
  withParentLocator,
} from './images.test-support.js';
import { CONTAINER_REASONS, type ContainerReason, openContainer } from './index.js';

// Containers that name a parent or an external data file must be refused (UNSUPPORTED, with a
// stable reason and the file named in the message): reading them alone returns zeros where the
// other file holds data. Images come from qemu-img where it can make them; the differencing
// structures it cannot write (VHD disk type 4, a VHDX parent locator, a VDI image type 4) are
// built from the specs' field tables.

const hasQemu = haveQemuImg();
const work = mkdtempSync(join(tmpdir(), 'diskube-parents-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const qemuImg = (...args: string[]) =>
  execFileSync('qemu-img', args, { stdio: 'ignore', cwd: work });
const bytesOf = (name: string) => new Uint8Array(readFileSync(join(work, name)));
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

interface Refusal {
  code: string;
  reason: string | undefined;
  message: string;
}

async function refusal(
  file: Uint8Array,
  extents: Record<string, Uint8Array> = {},
): Promise<Refusal | 'opened'> {
  try {
    await openContainer(memorySource(file), {
      resolveExtent: async (name): Promise<BlockSource> => {
        const bytes = extents[name];
        if (!bytes) throw new Error(`test: no extent ${name}`);
        return memorySource(bytes);
      },
    });
    return 'opened';
  } catch (error) {
    if (!DiskubeError.isInstance(error)) throw error;
    return { code: error.code, reason: error.reason, message: error.message };
  }
}

function expectRefused(got: Refusal | 'opened', reason: ContainerReason, names: string): void {
  expect(CONTAINER_REASONS).toContain(reason);
  expect(got).toMatchObject({ code: 'UNSUPPORTED', reason });
  expect((got as Refusal).message).toContain(names);
}

describe.runIf(hasQemu)('VMDK that names a parent', () => {
  beforeAll(() => qemuImg('create', '-f', 'vmdk', 'base.vmdk', '4M'));

  it.each(['monolithicSparse', 'streamOptimized'])(
    'qemu-img -o backing_file=base.vmdk, %s: refused, naming base.vmdk',
    async (subformat) => {
      const name = `child-${subformat}.vmdk`;
      qemuImg(
        'create',
        '-f',
        'vmdk',
        '-o',
        `backing_file=base.vmdk,backing_fmt=vmdk,subformat=${subformat}`,
        name,
      );
      expectRefused(await refusal(bytesOf(name)), 'backing-file', '"base.vmdk"');
      // The parent itself (no parent link in its embedded descriptor) opens.
      expect(await refusal(bytesOf('base.vmdk'))).toBe('opened');
    },
  );

  it('twoGbMaxExtentSparse descriptor with a parent: refused before any extent is opened', async () => {
    qemuImg(
      'create',
      '-f',
      'vmdk',
      '-o',
      'backing_file=base.vmdk,backing_fmt=vmdk,subformat=twoGbMaxExtentSparse',
      'child-2gb.vmdk',
    );
    expectRefused(await refusal(bytesOf('child-2gb.vmdk')), 'backing-file', '"base.vmdk"');
  });

  function descriptor(lines: string[]): Uint8Array {
    qemuImg('create', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'flat.vmdk', '1M');
    const text = readFileSync(join(work, 'flat.vmdk'), 'latin1').split('\n');
    const at = text.findIndex((l) => l.startsWith('createType'));
    return new TextEncoder().encode(
      [...text.slice(0, at), ...lines, ...text.slice(at + 1)].join('\n'),
    );
  }
  const flat = () => ({ 'flat-flat.vmdk': bytesOf('flat-flat.vmdk') });

  it('a parentCID alone, a hint alone, and a delta createType are each a parent link', async () => {
    expect(await refusal(descriptor(['createType="monolithicFlat"']), flat())).toBe('opened');
    expectRefused(
      await refusal(descriptor(['createType="monolithicFlat"', 'parentCID=1234abcd']), flat()),
      'backing-file',
      'parentCID=1234abcd',
    );
    expectRefused(
      await refusal(
        descriptor(['createType="monolithicFlat"', 'parentFileNameHint="../vm/base.vmdk"']),
        flat(),
      ),
      'backing-file',
      '"../vm/base.vmdk"',
    );
    expectRefused(
      await refusal(
        descriptor(['createType="vmfsSparse"', 'parentFileNameHint="vm-000001.vmdk"']),
        flat(),
      ),
      'backing-file',
      '"vm-000001.vmdk"',
    );
    expectRefused(
      await refusal(descriptor(['createType="monolithicSparseDelta"']), flat()),
      'backing-file',
      'monolithicSparseDelta',
    );
  });

  it('a parent link in a sparse extent of a descriptor disk is refused, naming the parent', async () => {
    // The descriptor has no parent, but the extent's embedded descriptor has one.
    const child = bytesOf('child-monolithicSparse.vmdk');
    const top = new TextEncoder().encode(
      '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="twoGbMaxExtentSparse"\nRW 8192 SPARSE "s001.vmdk"\n',
    );
    expectRefused(await refusal(top, { 's001.vmdk': child }), 'backing-file', '"base.vmdk"');
  });
});

describe.runIf(hasQemu)('qcow2 that names another file', () => {
  beforeAll(() => qemuImg('create', '-f', 'raw', 'base.raw', '4M'));

  it('backing file (qemu-img create -b base.raw -F raw): refused, naming it', async () => {
    qemuImg('create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'overlay.qcow2');
    expectRefused(await refusal(bytesOf('overlay.qcow2')), 'backing-file', '"base.raw"');
  });

  it('backing file in a v2 image: refused, naming it', async () => {
    qemuImg(
      'create',
      '-f',
      'qcow2',
      '-o',
      'compat=0.10',
      '-b',
      'base.raw',
      '-F',
      'raw',
      'overlay2.qcow2',
    );
    expectRefused(await refusal(bytesOf('overlay2.qcow2')), 'backing-file', '"base.raw"');
  });

  it('external data file (qemu-img create -o data_file=data.raw): refused, naming it', async () => {
    qemuImg('create', '-f', 'qcow2', '-o', 'data_file=data.raw', 'external.qcow2', '4M');
    const image = bytesOf('external.qcow2');
    expectRefused(await refusal(image), 'external-data-file', '"data.raw"');
    // Incompatible bit 2 cleared, the name extension (0x44415441 "DATA") left: still refused.
    const noBit = image.slice();
    expect(noBit[0x4f]! & 4).toBe(4);
    noBit[0x4f]! &= ~4;
    expectRefused(await refusal(noBit), 'external-data-file', '"data.raw"');
    // Bit set, extension removed (its type zeroed ends the list): refused, saying it is unnamed.
    const noName = image.slice();
    const at = dv(noName).getUint32(0x64);
    expect(dv(noName).getUint32(at)).toBe(0x44415441);
    dv(noName).setUint32(at, 0);
    expectRefused(await refusal(noName), 'external-data-file', 'does not name');
  });

  it('unknown incompatible bits are refused (extended L2, bit 4, is read: see chains.test.ts)', async () => {
    qemuImg('create', '-f', 'qcow2', '-o', 'extended_l2=on', 'l2.qcow2', '4M');
    expect(await refusal(bytesOf('l2.qcow2'))).toBe('opened');
    qemuImg('create', '-f', 'qcow2', 'plain.qcow2', '4M');
    expect(await refusal(bytesOf('plain.qcow2'))).toBe('opened');
    for (const bit of [5, 17, 63]) {
      const plain = bytesOf('plain.qcow2');
      dv(plain).setBigUint64(0x48, 1n << BigInt(bit));
      expect(await refusal(plain)).toMatchObject({
        code: 'UNSUPPORTED',
        reason: 'incompatible-feature',
      });
    }
  });

  it('a header extension running past the header cluster is CORRUPT', async () => {
    qemuImg('create', '-f', 'qcow2', '-o', 'cluster_size=4096', 'ext.qcow2', '4M');
    const image = bytesOf('ext.qcow2');
    const at = dv(image).getUint32(0x64);
    dv(image).setUint32(at, 0x12345678);
    dv(image).setUint32(at + 4, 5000);
    expect(await refusal(image)).toMatchObject({ code: 'CORRUPT', reason: 'bad-header-extension' });
  });
});

/** One's-complement VHD checksum of `length` bytes at `at`, written at `at + field`. */
function vhdChecksum(b: Uint8Array, at: number, length: number, field: number): void {
  let sum = 0;
  for (let i = 0; i < length; i++) if (i < field || i >= field + 4) sum += b[at + i]!;
  dv(b).setUint32(at + field, ~sum >>> 0);
}

/**
 * A differencing VHD built from the Microsoft VHD specification: footer copy at 0, dynamic
 * header at 512 (Parent Unique Id 0x28, Parent Unicode Name 0x40 in UTF-16BE, a W2ru parent
 * locator at 0x240), an empty BAT at 1536, the locator's data at 2048, the footer at the end.
 */
function differencingVhd(parent: string, size = 4 << 20): Uint8Array {
  const blockSize = 2 << 20;
  const blocks = Math.ceil(size / blockSize);
  const b = new Uint8Array(2048 + 512 + 512);
  const v = dv(b);
  const enc = new TextEncoder();
  const footer = (at: number) => {
    b.set(enc.encode('conectix'), at);
    v.setUint32(at + 0x08, 2); // features: reserved bit, always set
    v.setUint32(at + 0x0c, 0x00010000);
    v.setBigUint64(at + 0x10, 512n); // data offset: the dynamic header
    b.set(enc.encode('dskb'), at + 0x1c);
    b.set(enc.encode('Wi2k'), at + 0x24);
    v.setBigUint64(at + 0x28, BigInt(size));
    v.setBigUint64(at + 0x30, BigInt(size));
    v.setUint32(at + 0x38, ((size / 512 / 17 / 4) << 16) | (4 << 8) | 17); // C/H/S
    v.setUint32(at + 0x3c, 4); // disk type: differencing
    b.fill(0x11, at + 0x44, at + 0x54); // unique id
    vhdChecksum(b, at, 512, 0x40);
  };
  const dyn = 512;
  b.set(enc.encode('cxsparse'), dyn);
  v.setBigUint64(dyn + 0x08, 0xffffffffffffffffn);
  v.setBigUint64(dyn + 0x10, 1536n);
  v.setUint32(dyn + 0x18, 0x00010000);
  v.setUint32(dyn + 0x1c, blocks);
  v.setUint32(dyn + 0x20, blockSize);
  b.fill(0x22, dyn + 0x28, dyn + 0x38); // parent unique id
  for (let i = 0; i < parent.length; i++) v.setUint16(dyn + 0x40 + i * 2, parent.charCodeAt(i));
  const locator = dyn + 0x240;
  b.set(enc.encode('W2ru'), locator);
  v.setUint32(locator + 4, 512);
  v.setUint32(locator + 8, parent.length * 2);
  v.setBigUint64(locator + 16, 2048n);
  for (let i = 0; i < parent.length; i++) v.setUint16(2048 + i * 2, parent.charCodeAt(i), true);
  vhdChecksum(b, dyn, 1024, 0x24);
  b.fill(0xff, 1536, 1536 + blocks * 4);
  footer(0);
  footer(b.length - 512);
  return b;
}

describe.runIf(hasQemu)('differencing VHD, VHDX and VDI', () => {
  it('VHD disk type 4 (built from the spec): refused, naming the parent unicode name', async () => {
    expectRefused(await refusal(differencingVhd('.\\base.vhd')), 'backing-file', '".\\base.vhd"');
    // The same structure as a dynamic disk (type 3) opens: the builder is otherwise sound.
    const dynamic = differencingVhd('.\\base.vhd');
    for (const at of [0, dynamic.length - 512]) {
      dv(dynamic).setUint32(at + 0x3c, 3);
      vhdChecksum(dynamic, at, 512, 0x40);
    }
    expect(await refusal(dynamic)).toBe('opened');
  });

  it('VHDX with a parent locator (built from the spec): refused, naming relative_path', async () => {
    const vhdx = new Uint8Array(readFileSync(containerImage('vhdx')));
    expect(await refusal(vhdx)).toBe('opened');
    const pairs = {
      parent_linkage: '{83e0c2b6-1f4e-4bd5-8c87-5a5c3d1e2f40}',
      relative_path: '.\\base.vhdx',
      absolute_win32_path: '\\\\?\\C:\\vms\\base.vhdx',
    };
    expectRefused(
      await refusal(withParentLocator(vhdx, pairs, true)),
      'backing-file',
      '".\\base.vhdx"',
    );
    // The locator alone (HasParent clear) is a parent link too; and HasParent alone.
    const { relative_path: _, ...absolute } = pairs;
    expectRefused(
      await refusal(withParentLocator(vhdx, absolute, false)),
      'backing-file',
      '"\\\\?\\C:\\vms\\base.vhdx"',
    );
    expectRefused(
      await refusal(withParentLocator(vhdx, undefined, true)),
      'backing-file',
      'not named (no readable parent locator)',
    );
  });

  it('VDI image type 4 with uuidLinkage (VDICore.h VDIHEADER1): refused, naming the parent UUID', async () => {
    const vdi = new Uint8Array(readFileSync(containerImage('vdi')));
    expect(await refusal(vdi)).toBe('opened');
    const parent = '5f8e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b';
    const diff = vdi.slice();
    dv(diff).setUint32(0x4c, 4, true);
    diff.set(guidBytes(parent), 0x1a8);
    diff.fill(0x33, 0x1b8, 0x1c8); // uuidParentModify
    expectRefused(await refusal(diff), 'backing-file', parent);
    // A non-null parent UUID in a "normal" image is a parent link too.
    const linked = vdi.slice();
    linked.set(guidBytes(parent), 0x1a8);
    expectRefused(await refusal(linked), 'backing-file', parent);
  });
});
