import { hasErrorCode } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { allocMaxLevels, allocMaxRecs, parseBnoBlock, walkBnoBtree } from './btree.js';
import {
  put16,
  put32,
  put64,
  reasonOf,
  sealCrc,
  superblockSector,
  UUID,
} from './hex.test-support.js';
import { parseSuperblock } from './superblock.js';

const sb = parseSuperblock(superblockSector({ blocklog: 10, agblocks: 16384, dblocks: 65536 }));
const sb4 = parseSuperblock(
  superblockSector({ version: 4, blocklog: 9, agblocks: 32768, dblocks: 131072 }),
);
const NULL = 0xffffffff;

interface Block {
  level: number;
  left?: number;
  right?: number;
  /** [start, count] records (leaf) or [key, child] pairs (node). */
  recs: Array<[number, number]>;
}

/** A v5 bnobt block of 1 KiB at `agbno` of AG `agno`, CRC sealed. */
function block(agno: number, agbno: number, b: Block): Uint8Array {
  const out = new Uint8Array(1024);
  put32(out, 0, 0x41423342);
  put16(out, 4, b.level);
  put16(out, 6, b.recs.length);
  put32(out, 8, b.left ?? NULL);
  put32(out, 12, b.right ?? NULL);
  put64(out, 0x10, (agno * sb.agblocks + agbno) * 2);
  out.set(UUID, 0x20);
  put32(out, 0x30, agno);
  const { node } = allocMaxRecs(sb);
  b.recs.forEach(([a, c], i) => {
    put32(out, 56 + i * 8, a);
    if (b.level === 0) put32(out, 56 + i * 8 + 4, c);
    else put32(out, 56 + node * 8 + i * 4, c);
  });
  return sealCrc(out, 0x34);
}

describe('bnobt block', () => {
  it('sizes blocks and depth like the kernel', () => {
    expect(allocMaxRecs(sb)).toEqual({ leaf: 121, node: 80, header: 56 });
    expect(allocMaxRecs(sb4)).toEqual({ leaf: 62, node: 41, header: 16 });
    // 8192 extents at most, 60 per leaf, 40 per node: 137 leaves, 4 nodes, 1 root.
    expect(allocMaxLevels(sb)).toBe(3);
  });
  it('parses a leaf and a node', () => {
    const leaf = parseBnoBlock(
      block(1, 5, {
        level: 0,
        recs: [
          [10, 2],
          [20, 5],
        ],
      }),
      0,
      sb,
      1,
      5,
      16384,
      0,
      true,
    );
    expect(leaf).toMatchObject({ level: 0, starts: [10, 20], counts: [2, 5], leftsib: NULL });
    const node = parseBnoBlock(
      block(1, 5, {
        level: 1,
        recs: [
          [10, 6],
          [900, 7],
        ],
      }),
      0,
      sb,
      1,
      5,
      16384,
      1,
      true,
    );
    expect(node).toMatchObject({ starts: [10, 900], ptrs: [6, 7] });
  });
  it('rejects what contradicts the format', () => {
    const p = (bytes: Uint8Array, level = 0, isRoot = true, agbno = 5) =>
      reasonOf(() => parseBnoBlock(bytes, 0, sb, 1, agbno, 16384, level, isRoot));
    const ok = block(1, 5, { level: 0, recs: [[10, 2]] });
    const crc = ok.slice();
    crc[1000] = 1;
    expect(p(crc)).toBe('checksum');
    expect(p(ok, 0, true, 6)).toBe('bad-location'); // bb_blkno says another block
    expect(p(block(2, 5, { level: 0, recs: [[10, 2]] }))).toBe('bad-location'); // owner
    expect(p(ok, 1)).toBe('bad-level');
    expect(p(block(1, 5, { level: 0, recs: [] }), 0, false)).toBe('bad-numrecs');
    expect(
      p(
        block(1, 5, {
          level: 0,
          recs: [
            [20, 2],
            [10, 2],
          ],
        }),
      ),
    ).toBe('bad-key-order');
    expect(
      p(
        block(1, 5, {
          level: 0,
          recs: [
            [10, 11],
            [20, 2],
          ],
        }),
      ),
    ).toBe('bad-key-order');
    expect(p(block(1, 5, { level: 0, recs: [[16380, 5]] }))).toBe('out-of-range');
    expect(p(block(1, 5, { level: 0, recs: [[10, 0]] }))).toBe('out-of-range');
    expect(p(block(1, 5, { level: 1, recs: [[10, 16384]] }), 1)).toBe('out-of-range');
    expect(p(block(1, 5, { level: 0, left: 5, recs: [[10, 2]] }))).toBe('bad-sibling');
    const magic = ok.slice();
    magic[2] = 0x54; // ABTB: the v4 magic on a v5 filesystem
    expect(p(sealCrc(magic, 0x34))).toBe('bad-magic');
    expect(p(ok.subarray(0, 512))).toBe('truncated');
  });
});

describe('bnobt walk', () => {
  /** A two-level tree: root 3 → leaves 4, 5. */
  const tree = (patch: Partial<Record<number, Block>> = {}) => {
    const blocks: Record<number, Block> = {
      3: {
        level: 1,
        recs: [
          [10, 4],
          [100, 5],
        ],
      },
      4: {
        level: 0,
        right: 5,
        recs: [
          [10, 5],
          [50, 1],
        ],
      },
      5: {
        level: 0,
        left: 4,
        recs: [
          [100, 20],
          [2000, 14000],
        ],
      },
      ...patch,
    };
    return async (agbno: number) => {
      const b = blocks[agbno];
      return { bytes: b ? block(1, agbno, b) : new Uint8Array(1024), offset: agbno * 1024 };
    };
  };
  it('collects the free extents in order and the tree blocks', async () => {
    const free = await walkBnoBtree(tree(), sb, 1, 16384, 3, 2);
    expect(free).toEqual({
      starts: [10, 50, 100, 2000],
      counts: [5, 1, 20, 14000],
      nodes: [3, 4, 5],
    });
  });
  it('checks siblings, key ranges and loops across blocks', async () => {
    const w = (patch: Partial<Record<number, Block>>) =>
      walkBnoBtree(tree(patch), sb, 1, 16384, 3, 2).then(
        () => undefined,
        (e) => (hasErrorCode(e, 'CORRUPT') ? e.reason : Promise.reject(e)),
      );
    expect(await w({ 4: { level: 0, recs: [[10, 5]] } })).toBe('bad-sibling');
    // A leaf whose records fall outside the range its parent key gives it.
    expect(await w({ 5: { level: 0, left: 4, recs: [[60, 20]] } })).toBe('bad-key-order');
    expect(await w({ 4: { level: 0, right: 5, recs: [[10, 95]] } })).toBe('bad-key-order');
    // The root pointing at itself, or twice at one leaf.
    expect(
      await w({
        3: {
          level: 1,
          recs: [
            [10, 3],
            [100, 5],
          ],
        },
      }),
    ).toBe('btree-loop');
    expect(
      await w({
        3: {
          level: 1,
          recs: [
            [10, 4],
            [100, 4],
          ],
        },
      }),
    ).toBe('bad-sibling');
  });
});
