import { DiskubeError, memorySource } from '@diskube/core';
import { requireTools } from '@diskube/mkimage/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { btrfsDriver } from './driver.js';
import {
  buildBtrfs,
  copiesOf,
  MATRIX,
  patchNode,
  patchSuperblock,
  readImage,
  treeRoot,
  withLogRoot,
} from './images.test-support.js';

const tools = requireTools(['mkfs.btrfs', 'btrfs'], 'btrfs corruption tests');

const SB = 0x10000;

async function failure(image: Uint8Array): Promise<DiskubeError> {
  const e = await btrfsDriver.usedBlocks(memorySource(image)).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!DiskubeError.isInstance(e)) throw new Error(`expected a DiskubeError, got ${String(e)}`);
  return e;
}

describe.runIf(tools)('btrfs on real images patched byte by byte', () => {
  let path = '';
  let image: Uint8Array = new Uint8Array();
  const nodesize = 16384;
  beforeAll(async () => {
    path = await buildBtrfs(Object.values(MATRIX)[0]!);
    image = readImage(path);
  });

  it('superblock magic: probe says no, usedBlocks is CORRUPT bad-magic', async () => {
    const bad = image.slice();
    bad[SB + 0x40]! ^= 0xff;
    expect(await btrfsDriver.probe(memorySource(bad))).toBeNull();
    expect(await failure(bad)).toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-magic',
      offset: SB + 0x40,
    });
  });

  it('superblock checksum: CORRUPT, or all used with a warning under assumeUsedOnDoubt', async () => {
    const bad = image.slice();
    bad[SB + 0x12b]! ^= 0x01; // a label byte, not covered by the stored checksum any more
    expect(await failure(bad)).toMatchObject({ code: 'CORRUPT', reason: 'checksum', offset: SB });
    const all = await btrfsDriver.usedBlocks(memorySource(bad), { assumeUsedOnDoubt: true });
    expect(all.used.count()).toBe(all.blockCount);
    expect(all.warnings).toEqual([
      expect.objectContaining({ code: 'assumed-used', reason: 'checksum' }),
    ]);
  });

  it('checksum types other than crc32c, unknown incompat bits, two devices: UNSUPPORTED', async () => {
    const xxhash = patchSuperblock(image, (v) => v.setUint16(0xc4, 1, true));
    expect(await failure(xxhash)).toMatchObject({
      code: 'UNSUPPORTED',
      reason: 'csum-type',
      offset: SB + 0xc4,
    });
    // probe still recognises it, so the layer above keeps it whole as unsupported btrfs.
    expect(await btrfsDriver.probe(memorySource(xxhash))).toMatchObject({ filesystem: 'btrfs' });
    const v2 = patchSuperblock(image, (v) =>
      v.setBigUint64(0xbc, v.getBigUint64(0xbc, true) | (1n << 13n), true),
    );
    expect(await failure(v2)).toMatchObject({
      code: 'UNSUPPORTED',
      reason: 'unknown-feature',
      offset: SB + 0xbc,
    });
    const two = patchSuperblock(image, (v) => v.setBigUint64(0x88, 2n, true));
    expect(await failure(two)).toMatchObject({
      code: 'UNSUPPORTED',
      reason: 'multi-device',
      offset: SB + 0x88,
    });
    // Never absorbed, whatever the doubt policy says.
    await expect(
      btrfsDriver.usedBlocks(memorySource(two), { assumeUsedOnDoubt: true }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });

  it('a pending log tree is DIRTY log-tree', async () => {
    expect(await failure(withLogRoot(image))).toMatchObject({
      code: 'DIRTY',
      reason: 'log-tree',
      offset: SB + 0x60,
    });
  });

  it('a filesystem larger than the source is CORRUPT truncated', async () => {
    expect(await failure(image.subarray(0, 100 << 20))).toMatchObject({
      code: 'CORRUPT',
      reason: 'truncated',
    });
  });

  it('a flipped byte in one DUP copy of the chunk tree root: the other copy is used, with a warning', async () => {
    const [first, second] = copiesOf(path, treeRoot(path, 'chunk').logical);
    expect(second).toBeDefined();
    const clean = await btrfsDriver.usedBlocks(memorySource(image));
    const bad = image.slice();
    bad[first! + 0x200]! ^= 0x10;
    const result = await btrfsDriver.usedBlocks(memorySource(bad));
    expect(result.used.equals(clean.used)).toBe(true);
    expect(result.warnings).toEqual([expect.objectContaining({ code: 'bad-copy', offset: first })]);
  });

  it('the same byte flipped in both copies: CORRUPT checksum at the first copy', async () => {
    const [first, second] = copiesOf(path, treeRoot(path, 'chunk').logical);
    const bad = image.slice();
    bad[first! + 0x200]! ^= 0x10;
    bad[second! + 0x200]! ^= 0x10;
    expect(await failure(bad)).toMatchObject({
      code: 'CORRUPT',
      reason: 'checksum',
      offset: first,
    });
  });

  it('extent tree root with a valid checksum but wrong fields: typed errors at the field', async () => {
    const root = treeRoot(path, 'extent');
    const copies = copiesOf(path, root.logical);
    const at = copies[0]!;
    const cases: Array<[(v: DataView) => void, string, number]> = [
      [(v) => v.setUint32(0x60, 100_000, true), 'bad-nritems', 0x60],
      [(v) => v.setBigUint64(0x30, BigInt(root.logical + nodesize), true), 'bad-bytenr', 0x30],
      [(v) => v.setUint8(0x64, root.level + 1), 'bad-level', 0x64],
      [(v) => v.setBigUint64(0x50, v.getBigUint64(0x50, true) + 1n, true), 'bad-generation', 0x50],
      [(v) => v.setUint8(0x20, v.getUint8(0x20) ^ 1), 'bad-fsid', 0x20],
    ];
    for (const [patch, reason, field] of cases) {
      const bad = patchNode(image, copies, nodesize, patch);
      expect(await failure(bad), reason).toMatchObject({
        code: 'CORRUPT',
        reason,
        offset: at + field,
      });
    }
  });

  it('extent items out of order, misaligned or outside their chunk are CORRUPT', async () => {
    const root = treeRoot(path, 'extent');
    expect(root.level).toBe(0);
    const copies = copiesOf(path, root.logical);
    const at = copies[0]!;
    // Item 0's key objectid (a logical extent start) made larger than item 1's.
    const bad = patchNode(image, copies, nodesize, (v) => v.setBigUint64(0x65, 1n << 40n, true));
    expect(await failure(bad)).toMatchObject({
      code: 'CORRUPT',
      reason: 'bad-key-order',
      offset: at + 0x65 + 25,
    });
    // Item 0 is a data EXTENT_ITEM: its length (key offset) made odd, then far too long.
    const view = new DataView(image.buffer, image.byteOffset + at, nodesize);
    expect(view.getUint8(0x65 + 8)).toBe(168);
    const odd = patchNode(image, copies, nodesize, (v) =>
      v.setBigUint64(0x65 + 9, v.getBigUint64(0x65 + 9, true) + 1n, true),
    );
    expect(await failure(odd)).toMatchObject({ reason: 'bad-extent', offset: at + 0x65 });
    const long = patchNode(image, copies, nodesize, (v) =>
      v.setBigUint64(0x65 + 9, 1n << 30n, true),
    );
    expect(await failure(long)).toMatchObject({ reason: 'unmapped', offset: at + 0x65 });
  });
});
