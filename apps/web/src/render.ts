// The inspection as DOM: summary, container, partition table and warnings.
import type { InspectedPart, InspectedVolume, Inspection } from 'diskube';
import { PART_COLOURS } from './blockmap.js';
import { formatBytes, formatPercent } from './format.js';
import { describeWarning, type Refusal } from './messages.js';

type Attrs = Record<string, string | number>;

/** `<tag attrs>children</tag>`; attributes are set as given (`data-*` included). */
export function el(tag: string, attrs: Attrs = {}, ...children: Array<Node | string>): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

export function renderSummary(inspection: Inspection): HTMLElement {
  const { usedBytes: kept, size } = inspection;
  return el(
    'p',
    { class: 'summary', 'data-testid': 'summary', 'data-kept-bytes': kept, 'data-size': size },
    'A backup would store ≈ ',
    el('strong', {}, formatBytes(kept)),
    ` of ${formatBytes(size)} (${formatPercent(kept, size)}), before compression.`,
  );
}

function row(term: string, value: string, testid: string): HTMLElement[] {
  return [el('dt', {}, term), el('dd', { 'data-testid': testid }, value)];
}

export function renderLayers(name: string, inspection: Inspection): HTMLElement {
  const { container, table } = inspection;
  const details = Object.entries(container.details)
    .map(([key, value]) => `${key} ${value}`)
    .join(', ');
  const facts = el(
    'dl',
    { class: 'facts' },
    ...row('image', name, 'image-name'),
    ...row(
      'container',
      container.format === 'raw'
        ? 'raw disk'
        : `${container.format}, virtual disk ${formatBytes(container.virtualSize)}, allocation unit ${formatBytes(container.allocationUnit)}${details ? ` (${details})` : ''}`,
      'container',
    ),
    ...row('size', `${formatBytes(inspection.size)} (${inspection.size} bytes)`, 'size'),
    ...row(
      'table',
      table
        ? `${table.scheme.toUpperCase()}, ${table.partitions} partition${table.partitions === 1 ? '' : 's'}, ${table.sectorSize}-byte sectors`
        : 'none',
      'table',
    ),
  );
  return el('section', { class: 'layers' }, facts, renderParts(inspection));
}

const HEADINGS = ['', '#', 'start', 'size', 'type', 'filesystem', 'label', 'used', 'kept'];

function renderParts(inspection: Inspection): HTMLElement {
  const head = el('tr', {}, ...HEADINGS.map((h) => el('th', {}, h)));
  const rows = inspection.parts.flatMap((part, index) => [
    partRow(part, index),
    ...(part.volumeGroup?.volumes ?? []).map((volume) => volumeRow(volume)),
  ]);
  return el(
    'table',
    { class: 'parts', 'data-testid': 'parts' },
    el('thead', {}, head),
    el('tbody', {}, ...rows),
  );
}

function partRow(part: InspectedPart, index: number): HTMLElement {
  const fs = part.filesystem;
  const used = fs ? fs.usedBlocks * fs.blockSize : null;
  const [r, g, b] = PART_COLOURS[index % PART_COLOURS.length]!;
  const contents = part.content ?? (part.kind === 'unknown' ? 'unknown' : '');
  return el(
    'tr',
    {
      'data-testid': 'part',
      'data-number': part.number ?? '',
      'data-offset': part.offset,
      'data-size': part.size,
      'data-content': part.content ?? '',
      'data-label': part.label ?? '',
      'data-used-bytes': used ?? '',
      'data-kept-bytes': part.usedBytes,
    },
    el('td', {}, el('span', { class: 'swatch', style: `background: rgb(${r} ${g} ${b})` })),
    el('td', {}, part.number === null ? '—' : String(part.number)),
    el('td', { class: 'num' }, formatBytes(part.offset)),
    el('td', { class: 'num' }, formatBytes(part.size)),
    el('td', {}, part.type ?? (part.number === null ? 'whole disk' : '')),
    el('td', {}, contents),
    el('td', {}, part.label ?? ''),
    el('td', { class: 'num' }, used === null ? '—' : formatBytes(used)),
    el(
      'td',
      { class: 'num' },
      `${formatBytes(part.usedBytes)} (${formatPercent(part.usedBytes, part.size)})`,
    ),
  );
}

/** An LVM LV under its PV's row: name, what it holds, what of it is kept. */
function volumeRow(volume: InspectedVolume): HTMLElement {
  const fs = volume.filesystem;
  const used = fs ? fs.usedBlocks * fs.blockSize : null;
  return el(
    'tr',
    {
      class: 'volume',
      'data-testid': 'volume',
      'data-name': volume.name,
      'data-size': volume.size,
      'data-content': volume.content ?? '',
      'data-kept-bytes': volume.usedBytes,
    },
    el('td', {}, ''),
    el('td', {}, ''),
    el('td', {}, ''),
    el('td', { class: 'num' }, formatBytes(volume.size)),
    el('td', {}, `LV ${volume.name}`),
    el('td', {}, volume.content ?? 'unknown'),
    el('td', {}, volume.label ?? ''),
    el('td', { class: 'num' }, used === null ? '—' : formatBytes(used)),
    el(
      'td',
      { class: 'num' },
      `${formatBytes(volume.usedBytes)} (${formatPercent(volume.usedBytes, volume.size)})`,
    ),
  );
}

export function renderWarnings(inspection: Inspection): HTMLElement | null {
  if (inspection.warnings.length === 0) return null;
  return el(
    'ul',
    { class: 'warnings', 'data-testid': 'warnings' },
    ...inspection.warnings.map((warning) => {
      const { plain, detail } = describeWarning(warning);
      const attrs = { 'data-code': warning.code, 'data-testid': 'warning' };
      if (!plain) return el('li', attrs, detail);
      return el('li', attrs, `${plain} `, el('span', { class: 'detail' }, detail));
    }),
  );
}

export function renderRefusal(refusal: Refusal): HTMLElement {
  return el(
    'div',
    { class: 'refusal', role: 'alert', 'data-testid': 'refusal', 'data-code': refusal.code },
    el('h2', {}, refusal.title),
    el('p', {}, refusal.advice),
    el('p', { class: 'detail' }, refusal.detail),
  );
}
