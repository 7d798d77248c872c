import { open } from 'node:fs/promises';
import { run } from './exec.mjs';

// The benchmark's own view of which blocks an ext4 image uses, from e2fsprogs (`dumpe2fs`),
// independent of @diskube/ext: it is the oracle the restored images are checked against.

/**
 * Parses `dumpe2fs` output (without -h): block size, block count, and the free block ranges
 * listed per group ("Free blocks: 4140-12331, 13000").
 *
 * @param {string} text
 * @returns {{ blockSize: number, blockCount: number, free: Array<[number, number]> }}
 */
export function parseDumpe2fs(text) {
  const header = (/** @type {string} */ name) => {
    const m = new RegExp(`^${name}:\\s*(\\d+)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`dumpe2fs output has no "${name}"`);
    return Number(m[1]);
  };
  const blockSize = header('Block size');
  const blockCount = header('Block count');
  /** @type {Array<[number, number]>} */
  const free = [];
  for (const m of text.matchAll(/^\s+Free blocks:[ \t]*(.*)$/gm)) {
    for (const part of (m[1] ?? '').split(',')) {
      const s = part.trim();
      if (s === '') continue;
      const r = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (!r) throw new Error(`dumpe2fs: cannot read free block range "${s}"`);
      const start = Number(r[1]);
      const end = r[2] === undefined ? start : Number(r[2]);
      if (end < start || end >= blockCount) throw new Error(`dumpe2fs: bad free range "${s}"`);
      free.push([start, end - start + 1]);
    }
  }
  free.sort((a, b) => a[0] - b[0]);
  return { blockSize, blockCount, free };
}

/**
 * The complement of sorted, non-overlapping `[start, length]` ranges within `[0, count)`.
 *
 * @param {Array<[number, number]>} ranges
 * @param {number} count
 * @returns {Array<[number, number]>}
 */
export function complementRanges(ranges, count) {
  /** @type {Array<[number, number]>} */
  const out = [];
  let at = 0;
  for (const [start, length] of ranges) {
    if (start < at) throw new Error(`overlapping ranges at ${start}`);
    if (start > at) out.push([at, start - at]);
    at = start + length;
  }
  if (at < count) out.push([at, count - at]);
  return out;
}

/**
 * Used blocks of the ext filesystem in `image` according to dumpe2fs.
 *
 * @param {string} image
 * @returns {Promise<{ blockSize: number, blockCount: number, used: Array<[number, number]>, usedBlocks: number }>}
 */
export async function extUsedBlocks(image) {
  const { stdout } = await run('dumpe2fs', [image]);
  const { blockSize, blockCount, free } = parseDumpe2fs(stdout);
  const used = complementRanges(free, blockCount);
  const usedBlocks = used.reduce((n, [, len]) => n + len, 0);
  return { blockSize, blockCount, used, usedBlocks };
}

const CHUNK_BLOCKS = 256;

/**
 * Writes `reference`: a sparse file the size of `image` holding the image's used blocks and
 * zeros elsewhere, which is exactly what a used-blocks restore must produce (unused blocks keep
 * stale data in the source, and become holes in a restore). Counts the used blocks that are not
 * all zero: the data a restore has to write.
 *
 * @param {string} image
 * @param {string} reference
 * @returns {Promise<{ blockSize: number, usedBytes: number, dataBytes: number, imageBytes: number }>}
 */
export async function writeReference(image, reference) {
  const { blockSize, used, usedBlocks } = await extUsedBlocks(image);
  const src = await open(image, 'r');
  const dst = await open(reference, 'w');
  let dataBlocks = 0;
  try {
    const { size } = await src.stat();
    await dst.truncate(size);
    const buf = Buffer.alloc(CHUNK_BLOCKS * blockSize);
    const zero = Buffer.alloc(blockSize);
    for (const [start, length] of used) {
      for (let b = start; b < start + length; b += CHUNK_BLOCKS) {
        const n = Math.min(CHUNK_BLOCKS, start + length - b);
        const bytes = n * blockSize;
        const { bytesRead } = await src.read(buf, 0, bytes, b * blockSize);
        if (bytesRead !== bytes) throw new Error(`${image}: short read at block ${b}`);
        // Write runs of non-zero blocks; zero blocks stay holes.
        let run = -1;
        for (let i = 0; i <= n; i++) {
          const isData =
            i < n && zero.compare(buf, i * blockSize, (i + 1) * blockSize) !== 0 ? 1 : 0;
          if (isData) {
            dataBlocks++;
            if (run < 0) run = i;
          } else if (run >= 0) {
            await dst.write(buf, run * blockSize, (i - run) * blockSize, (b + run) * blockSize);
            run = -1;
          }
        }
      }
    }
    return {
      blockSize,
      usedBytes: usedBlocks * blockSize,
      dataBytes: dataBlocks * blockSize,
      imageBytes: size,
    };
  } finally {
    await src.close();
    await dst.close();
  }
}
