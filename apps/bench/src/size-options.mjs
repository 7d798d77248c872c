// What each way of shrinking a snapshot would gain, measured on one ext4 image against
// `partclone.ext4 | zstd -3`: larger frames, the digest table (left out by default since format
// 2.1; `--digest-table` keeps it), and storing identical blocks once. Sizes only (deterministic), so the machine's load does not matter.
//
//   node src/size-options.mjs [--image IMG]   # default: the quick bench image (built and cached)

import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { writeSnapshot } from '@diskube/format';
import { buildImage } from '@diskube/mkimage';
import { mapImage } from 'diskube';
import { openImageFile } from 'diskube/node';
import { q, sh } from './exec.mjs';
import { QUICK_SPEC } from './specs.mjs';

const { values } = parseArgs({ options: { image: { type: 'string' }, level: { type: 'string' } } });
const level = Number(values.level ?? 3);
const image = values.image ?? (await buildImage(QUICK_SPEC)).image;

/** A Writable that only counts what it is given. */
const counting = () => {
  let bytes = 0;
  const stream = new Writable({
    write(chunk, _enc, cb) {
      bytes += chunk.length;
      cb();
    },
  });
  return { stream, bytes: () => bytes };
};

const pc = Number(
  (
    await sh(
      `partclone.ext4 -c -q -s ${q(image)} -o - 2>/dev/null | zstd -${level} -T0 -q -c | wc -c`,
    )
  ).stdout.trim(),
);

const opened = await openImageFile(image);
const map = await mapImage(opened);
const rows = [];
for (const frameMiB of [1, 2, 4, 8, 16]) {
  // The writer's default (no digest table, format 2.1) and with the table (2.0's layout).
  const sizes = [];
  for (const digestTable of [false, true]) {
    const r = await writeSnapshot({
      source: opened.disk,
      used: map.used,
      blockSize: map.blockSize,
      tailUsed: map.tail.used,
      out: counting().stream,
      compress: { type: 'zstd', level },
      blocksPerFrame: (frameMiB << 20) / map.blockSize,
      digestTable,
    });
    sizes.push(r);
  }
  const [without, withTable] = sizes;
  if (without === undefined || withTable === undefined) throw new Error('no snapshot measured');
  rows.push({
    frameMiB,
    bytes: withTable.fileLength,
    digests: withTable.fileLength - without.fileLength,
    stored: without.storedBlocks,
  });
}

const first = rows[0];
if (first === undefined) throw new Error('no snapshot measured');

// Identical blocks within the image: how many stored blocks repeat one stored earlier.
const seen = new Set();
const unique = map.used.clone();
let duplicates = 0;
const buf = new Uint8Array(map.blockSize);
for (const [s, len] of map.used.runs()) {
  for (let i = s; i < s + len; i++) {
    await opened.disk.read(i * map.blockSize, buf);
    if (buf.every((b) => b === 0)) continue;
    const h = createHash('sha256').update(buf).digest('base64');
    if (seen.has(h)) {
      duplicates++;
      unique.clear(i);
    } else seen.add(h);
  }
}
// The same snapshot without the repeated blocks: what their frame bytes really cost after zstd
// (a repeat inside one frame already compresses to almost nothing).
const withoutRepeats = counting();
const u = await writeSnapshot({
  source: opened.disk,
  used: unique,
  blockSize: map.blockSize,
  tailUsed: map.tail.used,
  out: withoutRepeats.stream,
  compress: { type: 'zstd', level },
});
const repeatFrameBytes = first.bytes - first.digests - u.fileLength;
await opened.close();

const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const rel = (/** @type {number} */ b) => `${((b / pc - 1) * 100).toFixed(2)} %`;
const lines = [
  `Image ${image}: partclone.ext4 | zstd -${level} = ${mib(pc)}.`,
  '',
  '| frame | snapshot (default: no digest table) | vs partclone + zstd | with `--digest-table` | vs partclone + zstd | the table |',
  '| ----- | ----------------------------------- | ------------------- | --------------------- | ------------------- | --------- |',
  ...rows.map(
    (r) =>
      `| ${r.frameMiB} MiB | ${mib(r.bytes - r.digests)} | ${rel(r.bytes - r.digests)} | ${mib(r.bytes)} | ${rel(r.bytes)} | ${mib(r.digests)} |`,
  ),
  '',
  `Identical blocks: ${duplicates} of ${first.stored} stored blocks repeat an earlier one (${((duplicates / first.stored) * 100).toFixed(2)} %). Their frame bytes after zstd (1 MiB frames, with vs without them): ${mib(repeatFrameBytes)}. Storing each once (a reference of ~8 bytes per repeat instead) would give about ${mib(first.bytes - first.digests - repeatFrameBytes - 8 * duplicates)} (${rel(first.bytes - first.digests - repeatFrameBytes - 8 * duplicates)}) without a digest table.`,
  '',
];
process.stdout.write(lines.join('\n'));
