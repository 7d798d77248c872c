import { Writable } from 'node:stream';
import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { prng } from '@diskube/core/test';
import { BackupReader, writeIncremental, writeSnapshot } from '@diskube/format';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export { prng };

function fillRandom(rand: () => number, bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (rand() * 256) | 0;
}

async function toMemory(write: (out: Writable) => Promise<unknown>): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await write(out);
  return new Uint8Array(Buffer.concat(chunks));
}

export interface State {
  image: Uint8Array;
  used: Bitmap;
  /** What a restore of this state must produce: used blocks as in `image`, the rest zeros. */
  expected: Uint8Array;
}

/**
 * A snapshot and `steps` incrementals of a synthetic disk: each step modifies, adds, frees and
 * zeroes random blocks. Returns the states and the backup files (in memory).
 */
export async function makeChain(options: {
  seed: number;
  blockSize: number;
  blockCount: number;
  tail: number;
  steps: number;
  /** `clustered`: each step rewrites one contiguous tenth of the disk instead of random blocks. */
  churn?: 'random' | 'clustered';
  blocksPerFrame?: number;
  /** Blocks per window of the writer and readers (default: the format's). */
  windowBlocks?: number;
  /** Keep a digest table in every backup (default: the writer's, none). */
  digestTable?: boolean;
}) {
  const windows = options.windowBlocks ? { windowBlocks: options.windowBlocks } : {};
  const { blockSize: bs, blockCount: n, tail } = options;
  const rand = prng(options.seed);
  const image = new Uint8Array(n * bs + tail);
  fillRandom(rand, image);
  const used = new Bitmap(n);
  for (let i = 0; i < n; i++) if (rand() < 0.6) used.set(i);
  // Copies of earlier and later blocks: the snapshot holds them as repeats (format 2.2).
  for (let i = 5; i < n; i += 17)
    image.copyWithin(i * bs, ((i * 7) % n) * bs, (((i * 7) % n) + 1) * bs);
  const states: State[] = [];
  const files: Uint8Array[] = [];
  const readers: BackupReader[] = [];
  const snapshotState = (img: Uint8Array, u: Bitmap): State => {
    const expected = img.slice();
    for (let i = 0; i < n; i++) if (!u.get(i)) expected.fill(0, i * bs, (i + 1) * bs);
    return { image: img.slice(), used: u.clone(), expected };
  };
  for (let step = 0; step <= options.steps; step++) {
    if (step > 0 && options.churn === 'clustered') {
      const start = Math.floor(rand() * n * 0.9);
      for (let i = start; i < start + Math.floor(n / 10); i++) {
        used.set(i);
        fillRandom(rand, image.subarray(i * bs, (i + 1) * bs));
      }
    } else if (step > 0) {
      // New bytes that several blocks get this step: all but the first are repeats.
      const shared = new Uint8Array(bs);
      fillRandom(rand, shared);
      for (let i = 0; i < n; i++) {
        const r = rand();
        const block = image.subarray(i * bs, (i + 1) * bs);
        if (used.get(i)) {
          if (r < 0.08)
            fillRandom(rand, block); // modified
          else if (r < 0.12)
            used.clear(i); // freed (its bytes stay behind, as on a real disk)
          else if (r < 0.14)
            block.fill(0); // zeroed
          else if (r < 0.16)
            block[0]! ^= 0xff; // one byte changed
          else if (r < 0.19) block.set(shared); // a copy
        } else if (r < 0.08) {
          used.set(i); // newly used, maybe over stale bytes
          if (rand() < 0.5) fillRandom(rand, block);
          if (rand() < 0.2) block.fill(0);
        } else if (r < 0.12) {
          fillRandom(rand, block); // garbage written to a free block: must not appear
        }
      }
      fillRandom(rand, image.subarray(n * bs, n * bs + Math.min(tail, 4)));
    }
    states.push(snapshotState(image, used));
    const common = {
      source: memorySource(image.slice()),
      used: used.clone(),
      blockSize: bs,
      blocksPerFrame: options.blocksPerFrame ?? 4,
      compress: { type: 'zstd' as const, level: 1 },
      digestTable: options.digestTable ?? false,
      ...windows,
    };
    const file = await toMemory((out) =>
      readers.length === 0
        ? writeSnapshot({ ...common, out })
        : writeIncremental({ ...common, out, chain: [...readers] }),
    );
    files.push(file);
    readers.push(await BackupReader.fromSource(memorySource(file), `backup-${step}.dkb`, windows));
  }
  return { states, files, readers };
}
