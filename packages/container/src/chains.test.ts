import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type BlockSource, DiskubeError, memorySource } from '@diskube/core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  containerImage,
  execFileSync,
  guidBytes,
  haveQemuImg,
  random,
  readRaw,
  withParentLocator,
} from './images.test-support.js';
import {
  CONTAINER_REASONS,
  type ContainerDisk,
  openContainer,
  type ResolveParent,
} from './index.js';

// Backing chains (issue 14). qcow2 and VMDK chains are made by qemu-img and written through
// qemu-io; every chain must read byte for byte as `qemu-img convert -O raw` of its top, and
// its unallocated ranges must be zeros there. VDI and VHD differencing images (which neither
// qemu-img nor qemu-io can write) are built from the specs over qemu-img parents and checked
// against the parent's bytes plus what the test put in the child.

const hasQemu = haveQemuImg();
const work = mkdtempSync(join(tmpdir(), 'diskube-chains-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const MiB = 1 << 20;
const run = (tool: string, ...args: string[]) =>
  execFileSync(tool, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: work });
const qemuImg = (...args: string[]) => run('qemu-img', ...args);
/** `qemu-io -c "write …"` for each command, on an image of the given format. */
const qemuIo = (format: string, file: string, ...commands: string[]) =>
  run('qemu-io', '-f', format, ...commands.flatMap((c) => ['-c', c]), file);
const path = (name: string) => join(work, name);
const bytesOf = (name: string) => new Uint8Array(readFileSync(path(name)));
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** The chain's reference bytes: qemu-img convert -O raw of the top image. */
function converted(name: string): Uint8Array {
  qemuImg('convert', '-O', 'raw', name, `${name}.raw`);
  return bytesOf(`${name}.raw`);
}

/**
 * A resolver over the test directory: names relative to the child's file, one source per path
 * (so a loop comes back to a source already in the chain), VDI parents found by UUID.
 */
const uuids = new Map<string, string>();
function resolver() {
  const names = new Map<BlockSource, string>();
  const byPath = new Map<string, BlockSource>();
  const asked: string[] = [];
  const open = (file: string) => {
    let source = byPath.get(file);
    if (!source) {
      source = memorySource(new Uint8Array(readFileSync(file)));
      byPath.set(file, source);
      names.set(source, file);
    }
    return source;
  };
  const resolve: ResolveParent = async (hint, { kind, child }) => {
    asked.push(`${kind}:${hint}`);
    if (kind === 'uuid') {
      const file = uuids.get(hint);
      if (!file) throw new Error(`no image with UUID ${hint}`);
      return open(path(file));
    }
    return open(join(dirname(names.get(child)!), hint));
  };
  return { resolve, asked, open };
}

function openChain(name: string, r = resolver()) {
  return openContainer(r.open(path(name)), { resolveParent: r.resolve });
}

async function readAll(disk: ContainerDisk): Promise<Uint8Array> {
  const out = new Uint8Array(disk.size);
  // Odd-sized reads cross cluster, subcluster and layer boundaries.
  const step = 3 * MiB + 4096 + 512;
  for (let at = 0; at < disk.size; at += step) {
    await disk.read(at, out.subarray(at, Math.min(disk.size, at + step)));
  }
  return out;
}

async function unallocated(disk: ContainerDisk): Promise<Array<[number, number]>> {
  const ranges: Array<[number, number]> = [];
  for await (const r of disk.unallocatedRanges()) ranges.push(r);
  return ranges;
}

/** Every byte equal to the reference; every unallocated range all zeros in it. */
async function expectChainReads(disk: ContainerDisk, reference: Uint8Array): Promise<void> {
  expect(disk.size).toBe(reference.length);
  const got = await readAll(disk);
  const firstDiff = got.findIndex((b, i) => b !== reference[i]);
  expect(firstDiff).toBe(-1);
  for (const [o, l] of await unallocated(disk)) {
    const nonZero = reference.subarray(o, o + l).findIndex((b) => b !== 0);
    expect(nonZero, `unallocated [${o}, +${l}) holds data`).toBe(-1);
  }
}

async function layerRanges(disk: ContainerDisk): Promise<Array<[number, number, boolean]>> {
  const ranges: Array<[number, number, boolean]> = [];
  for await (const r of disk.layerRanges()) ranges.push(r);
  return ranges;
}

/** `qemu-img map` of one image alone: the ranges at depth 0, as [offset, length, zero]. */
function qemuMapDepth0(name: string): Array<[number, number, boolean]> {
  const map = JSON.parse(
    execFileSync('qemu-img', ['map', '--output=json', name], { cwd: work, encoding: 'utf8' }),
  ) as Array<{ start: number; length: number; depth: number; present: boolean; data: boolean }>;
  const out: Array<[number, number, boolean]> = [];
  for (const e of map) {
    if (e.depth !== 0 || !e.present) continue;
    const zero = !e.data;
    const last = out.at(-1);
    if (last && last[0] + last[1] === e.start && last[2] === zero) last[1] += e.length;
    else out.push([e.start, e.length, zero]);
  }
  return out;
}

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
    return 'opened';
  } catch (error) {
    if (!DiskubeError.isInstance(error)) throw error;
    expect(CONTAINER_REASONS).toContain(error.reason);
    return { code: error.code, reason: error.reason, message: error.message };
  }
}

describe.runIf(hasQemu)('qcow2 backing chains (qemu-img create -b, qemu-io writes)', () => {
  it('depth 1 to 3 over a qcow2 base read as qemu-img convert of the top', async () => {
    qemuImg('create', '-f', 'qcow2', 'base.qcow2', '16M');
    qemuIo('qcow2', path('base.qcow2'), 'write -P 0x11 0 6M', 'write -P 0x12 9M 2M');
    qemuImg('create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'mid.qcow2');
    qemuIo('qcow2', path('mid.qcow2'), 'write -P 0x55 1M 64k', 'write -z 4M 1M');
    qemuImg('create', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2');
    qemuIo(
      'qcow2',
      path('top.qcow2'),
      'write -P 0x66 3M 128k',
      'write -P 0x67 4M 4k',
      'write -z 9M 64k',
      'write -P 0x68 15M 512k',
    );
    for (const [name, depth] of [
      ['base.qcow2', 1],
      ['mid.qcow2', 2],
      ['top.qcow2', 3],
    ] as const) {
      const { disk, info } = await openChain(name);
      expect(info.chain.map((l) => l.name)).toEqual(
        [null, 'mid.qcow2', 'base.qcow2'].slice(3 - depth).map((n, i) => (i === 0 ? null : n)),
      );
      expect(info.chain).toHaveLength(depth);
      await expectChainReads(disk, converted(name));
    }
    // A zero cluster in an overlay masks the parent's data: it reads as zeros and counts as
    // unallocated (4M..5M in mid, except the 4k top wrote; 9M..9M+64k in top).
    const { disk } = await openChain('top.qcow2');
    const ranges = await unallocated(disk);
    const covered = (o: number, l: number) =>
      ranges.some(([ro, rl]) => ro <= o && o + l <= ro + rl);
    expect(covered(4 * MiB + 64 * 1024, MiB - 64 * 1024)).toBe(true);
    expect(covered(9 * MiB, 64 * 1024)).toBe(true);
    expect(covered(0, 4096)).toBe(false); // base data
    expect(covered(6 * MiB, 3 * MiB)).toBe(true); // nowhere written

    // What each layer holds itself (data, or zero clusters masking its parent) is what
    // `qemu-img map` puts at depth 0 of that layer; the parents hang off `disk.parent`.
    let layer: ContainerDisk | undefined = disk;
    for (const name of ['top.qcow2', 'mid.qcow2', 'base.qcow2']) {
      expect(layer, name).toBeDefined();
      expect(await layerRanges(layer!)).toEqual(qemuMapDepth0(name));
      layer = layer!.parent;
    }
    expect(layer).toBeUndefined();
  });

  it('a raw backing file (-F raw), smaller than the overlay', async () => {
    writeFileSync(path('base.raw'), random(3 * MiB, 7));
    qemuImg('create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'over-raw.qcow2', '8M');
    qemuIo('qcow2', path('over-raw.qcow2'), 'write -P 0x55 1M 64k', 'write -P 0x56 5M 4k');
    const { disk, info } = await openChain('over-raw.qcow2');
    expect(info.chain.map((l) => [l.format, l.name])).toEqual([
      ['qcow2', null],
      ['raw', 'base.raw'],
    ]);
    expect(info.chain[1]!.fileSize).toBe(3 * MiB);
    await expectChainReads(disk, converted('over-raw.qcow2'));
  });

  it('without a resolver: refused as before, naming the backing file', async () => {
    const got = await failure(openContainer(memorySource(bytesOf('top.qcow2'))));
    expect(got).toMatchObject({ code: 'UNSUPPORTED', reason: 'backing-file' });
    expect((got as { message: string }).message).toContain('"mid.qcow2"');
  });

  it('a missing parent is IO missing-parent naming the file', async () => {
    qemuImg('create', '-f', 'qcow2', 'gone.qcow2', '4M');
    qemuImg('create', '-f', 'qcow2', '-b', 'gone.qcow2', '-F', 'qcow2', 'orphan.qcow2');
    rmSync(path('gone.qcow2'));
    const got = await failure(openChain('orphan.qcow2'));
    expect(got).toMatchObject({ code: 'IO', reason: 'missing-parent' });
    expect((got as { message: string }).message).toContain('"gone.qcow2"');
  });

  it('a parent of another format than backing_fmt says is CORRUPT parent-mismatch', async () => {
    qemuImg('create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'liar.qcow2', '8M');
    // backing_fmt "raw" rewritten as "vdi" (same length): the raw file is no VDI.
    const image = bytesOf('liar.qcow2');
    const text = new TextDecoder('latin1').decode(image);
    const at = text.indexOf('raw\0');
    expect(at).toBeGreaterThan(0);
    const liar = image.slice();
    liar.set(new TextEncoder().encode('vdi'), at);
    writeFileSync(path('liar2.qcow2'), liar);
    const got = await failure(openChain('liar2.qcow2'));
    expect(got).toMatchObject({ code: 'CORRUPT', reason: 'parent-mismatch' });
    expect((got as { message: string }).message).toContain('"base.raw"');
  });

  it('a loop is CORRUPT parent-loop; a chain deeper than 64 is CORRUPT too-large', async () => {
    qemuImg('create', '-f', 'qcow2', 'loop-a.qcow2', '4M');
    qemuImg('create', '-f', 'qcow2', '-b', 'loop-a.qcow2', '-F', 'qcow2', 'loop-b.qcow2');
    qemuImg('rebase', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', 'loop-a.qcow2');
    expect(await failure(openChain('loop-b.qcow2'))).toMatchObject({
      code: 'CORRUPT',
      reason: 'parent-loop',
    });
    // A resolver that hands out a fresh source each time cannot show the loop: the depth
    // bound ends it.
    const fresh: ResolveParent = async (hint) => memorySource(bytesOf(hint));
    expect(
      await failure(openContainer(memorySource(bytesOf('loop-b.qcow2')), { resolveParent: fresh })),
    ).toMatchObject({ code: 'CORRUPT', reason: 'too-large' });
  });
});

describe.runIf(hasQemu)('qcow2 extended L2 entries (subclusters)', () => {
  it('sub-cluster writes, zero subclusters and an extended-L2 overlay read as qemu-img convert', async () => {
    qemuImg('create', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=64k', 'xl2.qcow2', '8M');
    qemuIo(
      'qcow2',
      path('xl2.qcow2'),
      'write -P 0x31 0 2k',
      'write -P 0x32 6k 4k',
      'write -P 0x33 130k 1k',
      'write -P 0x34 1M 200k',
      'write -P 0x35 3M 64k',
      'write -z 3153920 4k',
    );
    await expectChainReads((await openChain('xl2.qcow2')).disk, converted('xl2.qcow2'));
    const { info, disk } = await openChain('xl2.qcow2');
    expect(info.details.extendedL2).toBe(true);
    expect(disk.allocationUnit).toBe(2048);
    // Subcluster 2k..6k was never written: unallocated.
    const ranges = await unallocated(disk);
    expect(ranges.some(([o, l]) => o <= 2048 && 6144 <= o + l)).toBe(true);

    // An extended-L2 overlay over a standard base: unallocated subclusters show the base.
    qemuImg('create', '-f', 'qcow2', 'xbase.qcow2', '8M');
    qemuIo('qcow2', path('xbase.qcow2'), 'write -P 0x41 0 8M');
    qemuImg(
      'create',
      '-f',
      'qcow2',
      '-o',
      'extended_l2=on,cluster_size=32k',
      '-b',
      'xbase.qcow2',
      '-F',
      'qcow2',
      'xtop.qcow2',
    );
    qemuIo(
      'qcow2',
      path('xtop.qcow2'),
      'write -P 0x42 1k 1k',
      'write -z 33k 2k',
      'write -P 0x43 5245952 5k',
    );
    const xtop = (await openChain('xtop.qcow2')).disk;
    await expectChainReads(xtop, converted('xtop.qcow2'));
    expect(await layerRanges(xtop)).toEqual(qemuMapDepth0('xtop.qcow2'));
  });

  it('a subcluster both allocated and zero is CORRUPT', async () => {
    const image = bytesOf('xl2.qcow2');
    const v = dv(image);
    const l1 = Number(v.getBigUint64(0x28));
    const l2 = Number(v.getBigUint64(l1) & 0x00fffffffffffe00n);
    v.setUint32(l2 + 8, v.getUint32(l2 + 8) | 1); // zero bit of subcluster 0 (allocated)
    expect(await failure(readAll((await openContainer(memorySource(image))).disk))).toMatchObject({
      code: 'CORRUPT',
      reason: 'reserved',
    });
  });
});

describe.runIf(hasQemu)('VMDK chains (qemu-img create -f vmdk -o backing_file)', () => {
  it('depth 1 and 2 read as qemu-img convert; a parentCID mismatch is CORRUPT', async () => {
    qemuImg('create', '-f', 'vmdk', 'vbase.vmdk', '8M');
    qemuIo('vmdk', path('vbase.vmdk'), 'write -P 0x21 0 3M', 'write -P 0x22 6M 1M');
    qemuImg('create', '-f', 'vmdk', '-o', 'backing_file=vbase.vmdk,backing_fmt=vmdk', 'v1.vmdk');
    qemuIo('vmdk', path('v1.vmdk'), 'write -P 0x55 1M 64k', 'write -P 0x56 7M 128k');
    qemuImg(
      'create',
      '-f',
      'vmdk',
      '-o',
      'backing_file=v1.vmdk,backing_fmt=vmdk,subformat=streamOptimized',
      'v2.vmdk',
    );
    for (const name of ['v1.vmdk', 'v2.vmdk']) {
      const { disk, info } = await openChain(name);
      expect(info.chain.at(-1)!.name).toBe('vbase.vmdk');
      await expectChainReads(disk, converted(name));
      expect(await layerRanges(disk)).toEqual(qemuMapDepth0(name));
    }
    // parentCID is the parent's CID at creation: any other value means another parent.
    const child = bytesOf('v1.vmdk');
    const text = new TextDecoder('latin1').decode(child);
    const at = text.indexOf('parentCID=') + 'parentCID='.length;
    child.set(new TextEncoder().encode(text[at] === '0' ? '1' : '0'), at);
    writeFileSync(path('v1-bad.vmdk'), child);
    const got = await failure(openChain('v1-bad.vmdk'));
    expect(got).toMatchObject({ code: 'CORRUPT', reason: 'parent-mismatch' });
    expect((got as { message: string }).message).toContain('"vbase.vmdk"');
  });
});

function guidText(b: Uint8Array): string {
  const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
  const order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15];
  return order.map((i) => (i < 0 ? '-' : h(i))).join('');
}

describe.runIf(hasQemu)('differencing VDI built from VDICore.h over a qemu-img parent', () => {
  it('reads the parent where the child has no block, the child where it has, zeros for a zero block', async () => {
    // Parent: a dynamic VDI with 1 MiB blocks, data in blocks 0-3 and 6.
    qemuImg('create', '-f', 'vdi', 'pbase.vdi', '8M');
    qemuIo('vdi', path('pbase.vdi'), 'write -P 0x71 0 4M', 'write -P 0x72 6M 1M');
    const parent = bytesOf('pbase.vdi');
    const pv = dv(parent);
    const parentUuid = guidText(parent.subarray(0x188, 0x198));
    const parentModify = parent.slice(0x198, 0x1a8);
    uuids.set(parentUuid, 'pbase.vdi');
    const expected = converted('pbase.vdi');

    // Child (VDIHEADER1): the parent's header with image type 4 (differencing), its own
    // uuidCreate/uuidModify, uuidLinkage = the parent's uuidCreate, uuidParentModify = its
    // uuidModify. Block map at 512: all free (0xFFFFFFFF) but block 2 (data block 0, pattern
    // 0x91), block 5 (data block 1, random) and block 6 (0xFFFFFFFE: zero, over parent data).
    const offData = pv.getUint32(0x158, true);
    const child = new Uint8Array(offData + 2 * MiB);
    child.set(parent.subarray(0, 512));
    const v = dv(child);
    v.setUint32(0x4c, 4, true);
    child.set(guidBytes('0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9'), 0x188);
    child.set(guidBytes('1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9'), 0x198);
    child.set(guidBytes(parentUuid), 0x1a8);
    child.set(parentModify, 0x1b8);
    v.setUint32(0x184, 2, true); // cBlocksAllocated
    const map = pv.getUint32(0x154, true);
    for (let i = 0; i < 8; i++) v.setUint32(map + i * 4, 0xffffffff, true);
    v.setUint32(map + 2 * 4, 0, true);
    v.setUint32(map + 5 * 4, 1, true);
    v.setUint32(map + 6 * 4, 0xfffffffe, true);
    child.fill(0x91, offData, offData + MiB);
    const noise = random(MiB, 99);
    child.set(noise, offData + MiB);
    writeFileSync(path('child.vdi'), child);
    expected.fill(0x91, 2 * MiB, 3 * MiB);
    expected.set(noise, 5 * MiB);
    expected.fill(0, 6 * MiB, 7 * MiB);

    const r = resolver();
    const { disk, info } = await openChain('child.vdi', r);
    const asked = r.asked;
    expect(asked).toEqual([`uuid:${parentUuid}`]);
    expect(info.details.subformat).toBe('differencing');
    expect(info.chain.map((l) => [l.format, l.name])).toEqual([
      ['vdi', null],
      ['vdi', parentUuid],
    ]);
    await expectChainReads(disk, expected);
    // Free blocks 3 (parent data) and 4 (parent unallocated): only 4 and 7 stay unallocated,
    // plus the zero block 6.
    expect(await unallocated(disk)).toEqual([
      [4 * MiB, MiB],
      [6 * MiB, 2 * MiB],
    ]);

    // The parent modified since (uuidParentModify differs): CORRUPT, naming it.
    const stale = child.slice();
    stale[0x1b8]! ^= 0xff;
    writeFileSync(path('stale.vdi'), stale);
    const got = await failure(openChain('stale.vdi'));
    expect(got).toMatchObject({ code: 'CORRUPT', reason: 'parent-mismatch' });
    expect((got as { message: string }).message).toContain(parentUuid);
    // No image with the parent's UUID: IO missing-parent.
    const lost = child.slice();
    lost.set(guidBytes('99999999-4b5a-4978-8695-a4b3c2d1e0f9'), 0x1a8);
    writeFileSync(path('lost.vdi'), lost);
    expect(await failure(openChain('lost.vdi'))).toMatchObject({
      code: 'IO',
      reason: 'missing-parent',
    });
  });
});

/** One's-complement VHD checksum of `length` bytes at `at`, written at `at + field`. */
function vhdChecksum(b: Uint8Array, at: number, length: number, field: number): void {
  let sum = 0;
  for (let i = 0; i < length; i++) if (i < field || i >= field + 4) sum += b[at + i]!;
  dv(b).setUint32(at + field, ~sum >>> 0);
}

describe.runIf(hasQemu)(
  'differencing VHD built from the Microsoft VHD spec over a qemu-img parent',
  () => {
    it('sector bitmaps choose child or parent sector by sector; the unique id is checked', async () => {
      qemuImg('create', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', 'pbase.vhd', '8M');
      qemuIo('vpc', path('pbase.vhd'), 'write -P 0x81 0 5M', 'write -P 0x82 7M 512k');
      const parent = bytesOf('pbase.vhd');
      const parentId = parent.slice(parent.length - 512 + 0x44, parent.length - 512 + 0x54);
      const expected = converted('pbase.vhd');
      const size = expected.length;

      // Child: footer copy at 0, dynamic header at 512 (Parent Unique Id 0x28, Parent Unicode
      // Name 0x40 UTF-16BE, a W2ru locator at 0x240 → ".\pbase.vhd" UTF-16LE at 2048), BAT at
      // 1536, block 1 (2 MiB blocks: sector bitmap of 512 bytes, then data) at 4096.
      const blockSize = 2 * MiB;
      const blocks = Math.ceil(size / blockSize);
      const blockAt = 4096;
      const b = new Uint8Array(blockAt + 512 + blockSize + 512);
      const v = dv(b);
      const enc = new TextEncoder();
      const footer = (at: number) => {
        b.set(parent.subarray(parent.length - 512, parent.length), at);
        v.setBigUint64(at + 0x10, 512n);
        v.setUint32(at + 0x3c, 4);
        b.fill(0x5c, at + 0x44, at + 0x54); // the child's own unique id
        vhdChecksum(b, at, 512, 0x40);
      };
      const dyn = 512;
      b.set(enc.encode('cxsparse'), dyn);
      v.setBigUint64(dyn + 0x08, 0xffffffffffffffffn);
      v.setBigUint64(dyn + 0x10, 1536n);
      v.setUint32(dyn + 0x18, 0x00010000);
      v.setUint32(dyn + 0x1c, blocks);
      v.setUint32(dyn + 0x20, blockSize);
      b.set(parentId, dyn + 0x28);
      const name = 'pbase.vhd';
      for (let i = 0; i < name.length; i++) v.setUint16(dyn + 0x40 + i * 2, name.charCodeAt(i));
      const relative = '.\\pbase.vhd';
      const locator = dyn + 0x240;
      b.set(enc.encode('W2ru'), locator);
      v.setUint32(locator + 4, 512);
      v.setUint32(locator + 8, relative.length * 2);
      v.setBigUint64(locator + 16, 2048n);
      for (let i = 0; i < relative.length; i++) {
        v.setUint16(2048 + i * 2, relative.charCodeAt(i), true);
      }
      vhdChecksum(b, dyn, 1024, 0x24);
      b.fill(0xff, 1536, 1536 + blocks * 4);
      v.setUint32(1536 + 4, blockAt / 512); // block 1: 2..4 MiB
      // Sector bitmap (MSB first): sectors 0-7 and 1000-1999 of the block are the child's.
      const bit = (s: number) => (b[blockAt + (s >> 3)]! |= 0x80 >> (s & 7));
      const mine = [
        ...Array.from({ length: 8 }, (_, i) => i),
        ...Array.from({ length: 1000 }, (_, i) => 1000 + i),
      ];
      for (const s of mine) bit(s);
      const data = random(blockSize, 5);
      b.set(data, blockAt + 512);
      footer(0);
      footer(b.length - 512);
      writeFileSync(path('child.vhd'), b);
      for (const s of mine) {
        expected.set(data.subarray(s * 512, s * 512 + 512), 2 * MiB + s * 512);
      }

      const r = resolver();
      const { disk, info } = await openChain('child.vhd', r);
      const asked = r.asked;
      expect(asked).toEqual(['path:pbase.vhd']);
      expect(info.chain.map((l) => [l.format, l.name])).toEqual([
        ['vhd', null],
        ['vhd', 'pbase.vhd'],
      ]);
      await expectChainReads(disk, expected);

      // Another parent unique id: CORRUPT, naming the file.
      const other = b.slice();
      other[dyn + 0x28]! ^= 0xff;
      vhdChecksum(other, dyn, 1024, 0x24);
      writeFileSync(path('other.vhd'), other);
      const got = await failure(openChain('other.vhd'));
      expect(got).toMatchObject({ code: 'CORRUPT', reason: 'parent-mismatch' });
      expect((got as { message: string }).message).toContain('"pbase.vhd"');
    });
  },
);

describe.runIf(hasQemu)(
  'differencing VHDX (a Parent Locator item added to a qemu-img VHDX)',
  () => {
    it('not-present blocks read from the parent; parent_linkage is checked against its DataWriteGuid', async () => {
      // Parent: 64 MiB, every block present (0x77). Its DataWriteGuid is in the current header.
      qemuImg('create', '-f', 'vhdx', '-o', 'block_size=1M', 'pbase.vhdx', '64M');
      qemuIo('vhdx', path('pbase.vhdx'), 'write -P 0x77 0 64M');
      const parent = bytesOf('pbase.vhdx');
      const pv = dv(parent);
      const current =
        pv.getBigUint64(128 * 1024 + 8, true) > pv.getBigUint64(64 * 1024 + 8, true)
          ? 128 * 1024
          : 64 * 1024;
      const dataWriteGuid = guidText(parent.subarray(current + 0x20, current + 0x30));

      // Child: the test VHDX (qemu-img marks its all-zero blocks ZERO, state 2) with a
      // locator, and the ZERO blocks below 32 MiB made NOT_PRESENT (state 0): those read from
      // the parent; ZERO blocks mask it; present blocks (state 6) are the child's. 64 blocks:
      // no sector bitmap entry among them.
      const vhdx = new Uint8Array(readFileSync(containerImage('vhdx')));
      const v = dv(vhdx);
      let bat = -1;
      for (let i = 0; i < v.getUint32(192 * 1024 + 8, true); i++) {
        const at = 192 * 1024 + 16 + i * 32;
        if (vhdx[at] === 0x66) bat = Number(v.getBigUint64(at + 16, true)); // 2DC27766-…
      }
      const raw = readRaw();
      const expected = new Uint8Array(raw.length);
      const states = new Map<number, number>();
      for (let i = 0; i < raw.length / MiB; i++) {
        let state = v.getUint32(bat + i * 8, true) & 7;
        if (state === 2 && i < 32) {
          v.setBigUint64(bat + i * 8, 0n, true);
          state = 0;
        }
        states.set(state, (states.get(state) ?? 0) + 1);
        if (state === 6) expected.set(raw.subarray(i * MiB, (i + 1) * MiB), i * MiB);
        if (state === 0) expected.fill(0x77, i * MiB, (i + 1) * MiB);
      }
      expect(states.get(0)).toBeGreaterThan(10);
      expect(states.get(2)).toBeGreaterThan(10);
      expect(states.get(6)).toBeGreaterThan(3);
      const pairs = {
        parent_linkage: `{${dataWriteGuid}}`,
        relative_path: '.\\pbase.vhdx',
        absolute_win32_path: 'C:\\vms\\pbase.vhdx',
      };
      writeFileSync(path('child.vhdx'), withParentLocator(vhdx, pairs, true));

      const r = resolver();
      const { disk, info } = await openChain('child.vhdx', r);
      expect(r.asked).toEqual(['path:pbase.vhdx']);
      expect(info.details.subformat).toBe('differencing');
      await expectChainReads(disk, expected);
      // Unallocated: exactly the ZERO blocks (the parent has every block).
      const zeroBytes = (await unallocated(disk)).reduce((n, [, l]) => n + l, 0);
      expect(zeroBytes).toBe(states.get(2)! * MiB);

      // Another linkage: CORRUPT, naming the parent.
      writeFileSync(
        path('other.vhdx'),
        withParentLocator(
          vhdx,
          { ...pairs, parent_linkage: '{00000000-1111-2222-3333-444444444444}' },
          true,
        ),
      );
      const got = await failure(openChain('other.vhdx'));
      expect(got).toMatchObject({ code: 'CORRUPT', reason: 'parent-mismatch' });
      expect((got as { message: string }).message).toContain('"pbase.vhdx"');
    }, 180_000); // 7 s alone; qemu-io writes 64 MiB, which took over 60 s on a fully loaded CI machine
  },
);
