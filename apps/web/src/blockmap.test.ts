import { Bitmap } from 'diskube';
import { describe, expect, it } from 'vitest';
import {
  cellBytes,
  cellColour,
  layoutBlockMap,
  METADATA_COLOUR,
  paintBlockMap,
} from './blockmap.js';

const MiB = 1 << 20;
const TiB = 2 ** 40;

describe('layoutBlockMap', () => {
  it('gives each cell its used fraction and the partition covering most of it', () => {
    // 64 blocks of 4 KiB on 8 columns × 2 rows: 4 blocks a cell, 16 cells.
    const layout = layoutBlockMap(
      {
        size: 64 * 4096,
        blockSize: 4096,
        blockCount: 64,
        runs: [
          [0, 2],
          [6, 12],
          [63, 1],
        ],
        parts: [
          { offset: 8 * 4096, size: 30 * 4096 },
          { offset: 38 * 4096, size: 26 * 4096 },
        ],
      },
      8,
      2,
    );
    expect(layout).toMatchObject({ columns: 8, rows: 2, cellCount: 16, blocksPerCell: 4 });
    expect([...layout.used]).toEqual([0.5, 0.5, 1, 1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.25]);
    // Cell 9 (blocks 36–39) has 2 blocks of each part: the first to claim it keeps it.
    expect([...layout.owner]).toEqual([-1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(cellBytes(layout, 15)).toEqual([60 * 4096, 64 * 4096]);
  });

  it('matches a block-by-block count on a random map', () => {
    const blockCount = 10_007;
    const bitmap = new Bitmap(blockCount);
    let seed = 7;
    for (let i = 0; i < blockCount; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      if (seed % 3 !== 0) bitmap.set(i);
    }
    const layout = layoutBlockMap(
      { size: blockCount * 512, blockSize: 512, blockCount, runs: bitmap.runs(), parts: [] },
      64,
      16,
    );
    for (let cell = 0; cell < layout.cellCount; cell++) {
      const [start, end] = cellBytes(layout, cell).map((b) => b / 512) as [number, number];
      expect(layout.used[cell]).toBeCloseTo(
        bitmap.countRange(start, end - start) / (end - start),
        5,
      );
    }
  });

  it('draws a 1 TiB sparse disk in time proportional to runs and cells, not blocks', () => {
    const blockCount = TiB / 4096; // 2^28 blocks
    const used = new Bitmap(blockCount);
    used.setRange(0, 256); // table and boot area
    for (let at = 256; at < blockCount; at += 32768) used.setRange(at, 64); // group metadata
    const started = performance.now();
    const layout = layoutBlockMap({
      size: TiB,
      blockSize: 4096,
      blockCount,
      runs: used.runs(),
      parts: [{ offset: MiB, size: TiB - MiB }],
    });
    const pixels = paintBlockMap(layout);
    const ms = performance.now() - started;
    expect(layout.blocksPerCell).toBe(4096);
    expect(pixels.length).toBe(layout.rows * layout.columns * 4);
    // The first 16 MiB cell is mostly the partition; the 1 MiB before it is too small to own it.
    expect(layout.owner[0]).toBe(0);
    expect(layout.used[0]).toBeCloseTo(320 / 4096, 6);
    expect(layout.used[8]).toBeCloseTo(64 / 4096, 6); // blocks 32768…: the next group
    expect(layout.used[9]).toBe(0);
    console.log(`block map of a 1 TiB sparse disk: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(2000);
  });
});

describe('cellColour', () => {
  it('is grey outside partitions and shades a partition by how much of it is kept', () => {
    expect(cellColour(-1, 1)).toEqual(METADATA_COLOUR);
    expect(cellColour(0, 1)).toEqual([0, 114, 178]);
    expect(cellColour(0, 0)).toEqual([204, 227, 240]);
    expect(cellColour(7, 1)).toEqual(cellColour(0, 1));
  });
});
