// What each way of shrinking a snapshot gains, measured on one ext4 image against
// `partclone.ext4 | zstd -3`: larger frames, the digest table (left out by default since format
// 2.1; `--digest-table` keeps it), and holding identical blocks once (format 2.2; `--no-repeats`
// stores every copy). Sizes only (deterministic), so the machine's load does not matter.
//
//   node src/size-options.mjs [--image IMG]   # default: the quick bench image (built and cached)

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
  // The writer's default (format 2.2: repeats held once, no digest table), 2.1's default (every
  // copy stored again) and with the digest table (as `--digest-table` writes it).
  const variants = [
    { repeats: true, digestTable: false },
    { repeats: false, digestTable: false },
    { repeats: true, digestTable: true },
  ];
  const sizes = [];
  for (const v of variants) {
    sizes.push(
      await writeSnapshot({
        source: opened.disk,
        used: map.used,
        blockSize: map.blockSize,
        tailUsed: map.tail.used,
        out: counting().stream,
        compress: { type: 'zstd', level },
        blocksPerFrame: (frameMiB << 20) / map.blockSize,
        ...v,
      }),
    );
  }
  const [byDefault, noRepeats, withTable] = sizes;
  if (byDefault === undefined || noRepeats === undefined || withTable === undefined)
    throw new Error('no snapshot measured');
  rows.push({ frameMiB, byDefault, noRepeats, withTable });
}
await opened.close();

const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const rel = (/** @type {number} */ b) => `${((b / pc - 1) * 100).toFixed(2)} %`;
const four = rows.find((r) => r.frameMiB === 4);
const lines = [
  `Image ${image}: partclone.ext4 | zstd -${level} = ${mib(pc)}.`,
  '',
  '| frame | snapshot (default: repeats held once, no digest table) | vs partclone + zstd | every copy stored (`--no-repeats`) | vs partclone + zstd | with `--digest-table` | vs partclone + zstd |',
  '| ----- | ------------------------------------------------------ | ------------------- | ---------------------------------- | ------------------- | --------------------- | ------------------- |',
  ...rows.map(
    (r) =>
      `| ${r.frameMiB} MiB | ${mib(r.byDefault.fileLength)} | ${rel(r.byDefault.fileLength)} | ${mib(r.noRepeats.fileLength)} | ${rel(r.noRepeats.fileLength)} | ${mib(r.withTable.fileLength)} | ${rel(r.withTable.fileLength)} |`,
  ),
  '',
  four
    ? `With 4 MiB frames (the default), ${four.byDefault.repeatedBlocks} of ${four.byDefault.storedBlocks + four.byDefault.repeatedBlocks} held blocks are repeats of a block in an earlier frame, held once.`
    : '',
  '',
];
process.stdout.write(lines.join('\n'));
