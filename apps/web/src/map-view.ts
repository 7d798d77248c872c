// The block map on a canvas, with a status line naming what the pointer is over.
import type { Inspection } from 'diskube';
import { type BlockMapLayout, cellBytes, layoutBlockMap, paintBlockMap } from './blockmap.js';
import { formatBytes } from './format.js';
import { el } from './render.js';

export function renderBlockMap(inspection: Inspection): HTMLElement {
  const started = performance.now();
  const layout = layoutBlockMap({
    size: inspection.size,
    blockSize: inspection.blockSize,
    blockCount: inspection.blockCount,
    runs: inspection.used.runs(),
    parts: inspection.parts,
  });
  const canvas = el('canvas', {
    class: 'map',
    width: layout.columns,
    height: layout.rows,
    'data-testid': 'block-map',
    'aria-label': 'Block map of the disk',
  }) as HTMLCanvasElement;
  const pixels = paintBlockMap(layout);
  canvas.getContext('2d')!.putImageData(new ImageData(pixels, layout.columns, layout.rows), 0, 0);
  const drawMs = performance.now() - started;

  const hover = el('p', { class: 'hover', 'data-testid': 'map-hover' }, 'Point at the map.');
  canvas.addEventListener('mousemove', (event) => {
    const box = canvas.getBoundingClientRect();
    const column = Math.floor(((event.clientX - box.left) / box.width) * layout.columns);
    const row = Math.floor(((event.clientY - box.top) / box.height) * layout.rows);
    hover.textContent = describeCell(inspection, layout, row * layout.columns + column);
  });
  canvas.addEventListener('mouseleave', () => {
    hover.textContent = 'Point at the map.';
  });

  const blocks = layout.blocksPerCell * layout.blockSize;
  const scale = el(
    'p',
    { class: 'scale', 'data-testid': 'map-scale', 'data-draw-ms': drawMs.toFixed(1) },
    `Each cell is ${layout.blocksPerCell} block${layout.blocksPerCell === 1 ? '' : 's'} of ${formatBytes(layout.blockSize)} (${formatBytes(blocks)}); deep colour is kept, pale is free, grey is outside partitions (tables, boot area: kept). Drawn in ${drawMs.toFixed(0)} ms.`,
  );
  return el('section', { class: 'block-map' }, canvas, hover, scale);
}

/** "Partition 2 (ntfs) · bytes 268435456–268447743 (256.0 MiB) · 37% kept". */
export function describeCell(inspection: Inspection, layout: BlockMapLayout, cell: number): string {
  if (cell < 0 || cell >= layout.cellCount) return 'Past the end of the disk.';
  const [start, end] = cellBytes(layout, cell);
  const owner = layout.owner[cell]!;
  const part = inspection.parts[owner];
  const name = !part
    ? 'Outside partitions (tables, boot area, gaps)'
    : `${part.number === null ? 'Whole disk' : `Partition ${part.number}`}${part.content ? ` (${part.content}${part.label ? ` “${part.label}”` : ''})` : ''}`;
  const kept = Math.round(layout.used[cell]! * 100);
  return `${name} · bytes ${start}–${end - 1} (${formatBytes(start)} + ${formatBytes(end - start)}) · ${kept}% kept`;
}
