// The page: pick or drop an image, inspect it lazily through Blob.slice, show what a backup keeps.
import { type BlockSource, blobSource, inspectImage } from 'diskube';
import { formatBytes } from './format.js';
import { renderBlockMap } from './map-view.js';
import { describeRefusal } from './messages.js';
import { el, renderLayers, renderRefusal, renderSummary, renderWarnings } from './render.js';
import './style.css';

const input = document.querySelector<HTMLInputElement>('[data-testid="file-input"]')!;
const drop = document.querySelector<HTMLElement>('[data-testid="drop-zone"]')!;
const fullCopy = document.querySelector<HTMLInputElement>('[data-testid="full-copy"]')!;
const status = document.querySelector<HTMLElement>('[data-testid="status"]')!;
const result = document.querySelector<HTMLElement>('#result')!;

let current: File | null = null;
let running: AbortController | null = null;

/** A source that counts what it reads, to show that the file is never read whole. */
function countingSource(file: File): BlockSource & { reads: number; bytes: number } {
  const inner = blobSource(file);
  const counted = {
    size: inner.size,
    reads: 0,
    bytes: 0,
    read(offset: number, dst: Uint8Array) {
      counted.reads++;
      counted.bytes += dst.length;
      return inner.read(offset, dst);
    },
  };
  return counted;
}

/** `data-state` on <body>: idle, busy, done, refused. Tests wait on it. */
function setState(state: string, message: string): void {
  document.body.dataset.state = state;
  status.textContent = message;
}

async function inspect(file: File): Promise<void> {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  current = file;
  result.replaceChildren();
  setState('busy', `Reading ${file.name} (${formatBytes(file.size)})…`);
  const source = countingSource(file);
  const started = performance.now();
  try {
    const inspection = await inspectImage(source, {
      fullCopyOnDoubt: fullCopy.checked,
      signal: controller.signal,
    });
    if (controller.signal.aborted) return;
    const ms = performance.now() - started;
    const reads = el(
      'p',
      { class: 'reads', 'data-testid': 'reads', 'data-bytes-read': source.bytes },
      `Read ${formatBytes(source.bytes)} of the ${formatBytes(file.size)} file in ${source.reads} reads (${ms.toFixed(0)} ms); nothing left this browser.`,
    );
    const warnings = renderWarnings(inspection);
    result.replaceChildren(
      renderSummary(inspection),
      ...(warnings ? [warnings] : []),
      renderBlockMap(inspection),
      renderLayers(file.name, inspection),
      reads,
    );
    const regions = inspection.parts.length;
    setState('done', `${file.name}: ${regions} region${regions === 1 ? '' : 's'} inspected.`);
  } catch (error) {
    if (controller.signal.aborted) return;
    result.replaceChildren(renderRefusal(describeRefusal(error)));
    setState('refused', `${file.name} cannot be backed up as it is.`);
  }
}

input.addEventListener('change', () => {
  const file = input.files?.[0];
  if (file) void inspect(file);
});
fullCopy.addEventListener('change', () => {
  if (current) void inspect(current);
});
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const file = event.dataTransfer?.files[0];
  if (file) void inspect(file);
});
setState('idle', 'No image yet.');
