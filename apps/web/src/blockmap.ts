// The block map: the disk as a grid of cells, each a range of blocks, coloured by owner and use.
// Work is proportional to used runs + parts + cells, never to the number of blocks, so a 1 TiB
// sparse disk (2^28 blocks of 4 KiB) draws as fast as a small one.

/** What the map needs from an inspection. */
export interface BlockMapInput {
  size: number;
  blockSize: number;
  blockCount: number;
  /** Used block runs `[start, length]`, in order, not overlapping (`Bitmap.runs()`). */
  runs: Iterable<readonly [number, number]>;
  /** Regions of the disk: partitions, or the whole disk for a bare filesystem. */
  parts: ReadonlyArray<{ offset: number; size: number }>;
}

export interface BlockMapLayout {
  columns: number;
  rows: number;
  /** Cells that hold blocks; the rest of the grid is past the end of the disk. */
  cellCount: number;
  blockSize: number;
  blockCount: number;
  blocksPerCell: number;
  /** Used fraction of each cell's blocks, 0…1. */
  used: Float32Array;
  /** Index into `parts` of the region covering most of each cell, or -1 (tables, gaps). */
  owner: Int16Array;
}

export const COLUMNS = 512;
export const MAX_ROWS = 128;

/** Lays `input` out on a grid at most `columns` × `maxRows` cells. */
export function layoutBlockMap(
  input: BlockMapInput,
  columns = COLUMNS,
  maxRows = MAX_ROWS,
): BlockMapLayout {
  const { blockCount, blockSize } = input;
  const blocksPerCell = Math.max(1, Math.ceil(blockCount / (columns * maxRows)));
  const cellCount = Math.ceil(blockCount / blocksPerCell);
  const rows = Math.max(1, Math.ceil(cellCount / columns));
  const used = new Float32Array(rows * columns);
  const owner = new Int16Array(rows * columns).fill(-1);
  const cellOf = (block: number) => Math.floor(block / blocksPerCell);

  // Used blocks: the first and last cell of a run get a share, the ones between are full.
  for (const [start, length] of input.runs) {
    const end = start + length;
    const first = cellOf(start);
    const last = cellOf(end - 1);
    if (first === last) {
      used[first]! += length;
      continue;
    }
    used[first]! += (first + 1) * blocksPerCell - start;
    used.fill(blocksPerCell, first + 1, last);
    used[last]! += end - last * blocksPerCell;
  }
  for (let cell = 0; cell < cellCount; cell++) {
    const blocks = Math.min(blocksPerCell, blockCount - cell * blocksPerCell);
    used[cell] = used[cell]! / blocks;
  }

  // Owners: a part owns the cells it covers most of; a tiny part still owns one cell.
  const cellBytes = blocksPerCell * blockSize;
  const cover = new Float64Array(cellCount);
  input.parts.forEach((part, index) => {
    const end = Math.min(part.offset + part.size, blockCount * blockSize);
    if (end <= part.offset) return;
    const first = Math.floor(part.offset / cellBytes);
    const last = Math.floor((end - 1) / cellBytes);
    for (let cell = first; cell <= last; cell++) {
      const overlap =
        Math.min(end, (cell + 1) * cellBytes) - Math.max(part.offset, cell * cellBytes);
      if (overlap > cover[cell]!) {
        cover[cell] = overlap;
        owner[cell] = index;
      }
    }
  });
  return { columns, rows, cellCount, blockSize, blockCount, blocksPerCell, used, owner };
}

/** Byte range `[start, end)` of the disk that `cell` shows. */
export function cellBytes(layout: BlockMapLayout, cell: number): [number, number] {
  const start = cell * layout.blocksPerCell;
  const end = Math.min(start + layout.blocksPerCell, layout.blockCount);
  return [start * layout.blockSize, end * layout.blockSize];
}

type Rgb = readonly [number, number, number];

/** One hue per partition, in table order (colour-blind-friendly, after Okabe–Ito). */
export const PART_COLOURS: readonly Rgb[] = [
  [0, 114, 178],
  [230, 159, 0],
  [0, 158, 115],
  [204, 121, 167],
  [86, 180, 233],
  [213, 94, 0],
  [240, 228, 66],
];
/** Bytes outside every partition: tables, boot loaders, gaps. Always kept. */
export const METADATA_COLOUR: Rgb = [70, 70, 78];
const PAST_END: Rgb = [246, 246, 248];

/** A partition's colour: full when used, a pale tint when unused, mixed by the used fraction. */
export function cellColour(owner: number, used: number): Rgb {
  if (owner < 0) return mix([205, 205, 212], METADATA_COLOUR, used);
  const hue = PART_COLOURS[owner % PART_COLOURS.length]!;
  return mix(mix(hue, [255, 255, 255], 0.8), hue, used);
}

function mix(from: Rgb, to: Rgb, t: number): Rgb {
  return [0, 1, 2].map((i) => Math.round(from[i]! + (to[i]! - from[i]!) * t)) as unknown as Rgb;
}

/** Shades of used per colour: enough that a cell a thirty-second used still shows. */
const SHADES = 32;

/** RGBA pixels of the grid, one per cell, row by row. */
export function paintBlockMap(layout: BlockMapLayout): Uint8ClampedArray<ArrayBuffer> {
  // Every colour a cell can take, computed once: row 0 is outside partitions, row 1 + i part i.
  const palette: Rgb[] = [];
  for (let owner = -1; owner < PART_COLOURS.length; owner++) {
    for (let shade = 0; shade <= SHADES; shade++) palette.push(cellColour(owner, shade / SHADES));
  }
  const pixels = new Uint8ClampedArray(layout.rows * layout.columns * 4);
  for (let cell = 0; cell < layout.rows * layout.columns; cell++) {
    let rgb = PAST_END;
    if (cell < layout.cellCount) {
      const owner = layout.owner[cell]!;
      const row = owner < 0 ? 0 : 1 + (owner % PART_COLOURS.length);
      // Any use at all shows as at least one shade: a single kept block is never invisible.
      const used = layout.used[cell]!;
      const shade = used > 0 ? Math.max(1, Math.round(used * SHADES)) : 0;
      rgb = palette[row * (SHADES + 1) + shade]!;
    }
    const at = cell * 4;
    pixels[at] = rgb[0];
    pixels[at + 1] = rgb[1];
    pixels[at + 2] = rgb[2];
    pixels[at + 3] = 255;
  }
  return pixels;
}
