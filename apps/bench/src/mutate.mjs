import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.mjs';

// One step of the incremental chain: changes an ext4 image in place the way a running guest
// would, on the same image copy each time (rebuilding from a spec could move allocations):
// overwrite blocks inside a big file and rewrite small files in their own blocks (found with
// debugfs `blocks`), delete some small files, and write new files through `debugfs -w`.

/** Fixed debugfs clock, so the steps are reproducible. */
const ENV = { E2FSPROGS_FAKE_TIME: '1000000000' };

/**
 * @typedef {object} StepSize
 * @property {string} bigFile file whose blocks are overwritten in place
 * @property {number} bigRanges ranges of consecutive logical blocks overwritten in it
 * @property {number} bigRangeBlocks blocks per range
 * @property {number} rewrites small files rewritten in place
 * @property {number} deletes small files deleted
 * @property {number} newFiles new small files
 * @property {number} logBytes bytes of a new text log file
 */

/** @type {{ quick: StepSize, full: StepSize }} */
export const STEP_SIZES = {
  quick: {
    bigFile: '/data/db.bin',
    bigRanges: 4,
    bigRangeBlocks: 16,
    rewrites: 20,
    deletes: 10,
    newFiles: 20,
    logBytes: 512 << 10,
  },
  full: {
    bigFile: '/data/db.bin',
    bigRanges: 16,
    bigRangeBlocks: 64,
    rewrites: 100,
    deletes: 50,
    newFiles: 100,
    logBytes: 8 << 20,
  },
};

/** Deterministic pseudo-random bytes (AES-256-CTR keyed by the seed). */
export function seededBytes(/** @type {string} */ seed, /** @type {number} */ length) {
  const key = createHash('sha256').update(`bench ${seed}`).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(length));
}

/** Deterministic integers in [0, n) from a seed. */
function picker(/** @type {string} */ seed) {
  let pool = seededBytes(seed, 4096);
  let at = 0;
  let round = 0;
  return (/** @type {number} */ n) => {
    if (at + 4 > pool.length) {
      pool = seededBytes(`${seed}/${++round}`, 4096);
      at = 0;
    }
    const v = pool.readUInt32LE(at);
    at += 4;
    return v % n;
  };
}

/** Readable log lines, compressible like the image's text files. */
export function logText(/** @type {number} */ step, /** @type {number} */ length) {
  const lines = [];
  let n = 0;
  for (let i = 0; n < length; i++) {
    const line = `step ${step} req ${String(i).padStart(7, '0')}: GET /api/v1/items/${(i * 7919) % 100000} 200 ${(i * 31) % 997}ms\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, length);
}

/**
 * Runs debugfs commands (read-only unless `write`) in one process; returns each command's output.
 *
 * @param {string} image
 * @param {string[]} commands
 * @param {boolean} write
 */
export async function debugfs(image, commands, write) {
  const args = write ? ['-w', '-f', '-', image] : ['-f', '-', image];
  const r = await run('debugfs', args, { env: ENV, input: `${commands.join('\n')}\n` });
  // debugfs exits 0 even when a command fails; errors are the stderr lines besides the banner.
  const errors = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
  if (errors.length > 0) throw new Error(`debugfs: ${errors.slice(0, 3).join(' / ')}`);
  /** @type {string[]} */
  const outputs = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('debugfs: ')) outputs.push('');
    else if (outputs.length > 0) outputs[outputs.length - 1] += `${line}\n`;
  }
  return outputs;
}

/** Physical blocks of each file, in logical order (debugfs `blocks`). */
export async function fileBlocks(/** @type {string} */ image, /** @type {string[]} */ paths) {
  const outputs = await debugfs(
    image,
    paths.map((p) => `blocks "${p}"`),
    false,
  );
  if (outputs.length !== paths.length) throw new Error('debugfs: missing `blocks` output');
  return outputs.map((o, i) => {
    const blocks = o.trim().split(/\s+/).filter(Boolean).map(Number);
    if (blocks.some((b) => !Number.isInteger(b) || b <= 0)) {
      throw new Error(`debugfs blocks ${paths[i]}: unexpected output "${o.slice(0, 80)}"`);
    }
    return blocks;
  });
}

/**
 * Applies step `step` (1, 2, …) to `image` in place.
 *
 * @param {object} a
 * @param {string} a.image image to change (a copy; never the cached build)
 * @param {number} a.step
 * @param {number} a.blockSize
 * @param {StepSize} a.size
 * @param {Array<{ path: string, size: number }>} a.smallFiles files that may be rewritten or deleted; deleted ones are removed from this list
 * @param {string} a.scratch directory for the host files debugfs copies in
 * @returns {Promise<{ bytesOverwritten: number, bytesAdded: number, filesDeleted: number }>}
 */
export async function applyStep({ image, step, blockSize, size, smallFiles, scratch }) {
  const pick = picker(`step ${step}`);
  const fh = await open(image, 'r+');
  let bytesOverwritten = 0;
  try {
    // 1. Overwrite ranges of the big file in place (a database's page writes).
    const [big] = await fileBlocks(image, [size.bigFile]);
    if (!big || big.length < size.bigRangeBlocks) throw new Error(`${size.bigFile}: too small`);
    for (let r = 0; r < size.bigRanges; r++) {
      const first = pick(big.length - size.bigRangeBlocks + 1);
      const data = seededBytes(`step ${step} big ${r}`, size.bigRangeBlocks * blockSize);
      for (let i = 0; i < size.bigRangeBlocks; i++) {
        const phys = /** @type {number} */ (big[first + i]);
        await fh.write(data, i * blockSize, blockSize, phys * blockSize);
      }
      bytesOverwritten += data.length;
    }
    // 2. Rewrite small files in place: same size, new bytes, same blocks.
    const chosen = new Set();
    while (chosen.size < Math.min(size.rewrites + size.deletes, smallFiles.length)) {
      chosen.add(pick(smallFiles.length));
    }
    const order = [...chosen];
    const rewrite = order
      .slice(0, size.rewrites)
      .map((i) => /** @type {{path: string, size: number}} */ (smallFiles[i]));
    const remove = order
      .slice(size.rewrites)
      .map((i) => /** @type {{path: string, size: number}} */ (smallFiles[i]));
    const blocks = await fileBlocks(
      image,
      rewrite.map((f) => f.path),
    );
    for (const [k, f] of rewrite.entries()) {
      const data = seededBytes(`step ${step} rewrite ${f.path}`, f.size);
      const fileBlocksOf = /** @type {number[]} */ (blocks[k]);
      for (let off = 0, i = 0; off < f.size; off += blockSize, i++) {
        const n = Math.min(blockSize, f.size - off);
        await fh.write(data, off, n, /** @type {number} */ (fileBlocksOf[i]) * blockSize);
      }
      bytesOverwritten += f.size;
    }
    // 3. and 4. Delete some small files, write a new log and new small files.
    const dir = join(scratch, `step-${step}`);
    await mkdir(dir, { recursive: true });
    const commands = remove.map((f) => `rm "${f.path}"`);
    const log = join(dir, 'log');
    await writeFile(log, logText(step, size.logBytes));
    let bytesAdded = size.logBytes;
    commands.push('cd /var/log/app', `write ${log} requests.log.${step}`);
    commands.push(`mkdir /home/user/new-${step}`, `cd /home/user/new-${step}`);
    for (let i = 0; i < size.newFiles; i++) {
      const n = 1 + pick(3 * blockSize);
      const host = join(dir, `n${i}`);
      await writeFile(host, seededBytes(`step ${step} new ${i}`, n));
      commands.push(`write ${host} f${i}`);
      bytesAdded += n;
    }
    await fh.close();
    await debugfs(image, commands, true);
    const gone = new Set(remove.map((f) => f.path));
    for (let i = smallFiles.length - 1; i >= 0; i--) {
      if (gone.has(/** @type {{path: string}} */ (smallFiles[i]).path)) smallFiles.splice(i, 1);
    }
    return { bytesOverwritten, bytesAdded, filesDeleted: remove.length };
  } finally {
    await fh.close().catch(() => {});
  }
}
