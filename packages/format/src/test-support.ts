import { Writable } from 'node:stream';
import { Bitmap } from '@diskube/bitmap';

import { prng } from '@diskube/core/test';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export { prng };

export function randomBytesFrom(rand: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (rand() * 256) | 0;
  return out;
}

/** Collects everything written into one buffer. */
export function memoryWritable(): { stream: Writable; bytes(): Uint8Array } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return { stream, bytes: () => new Uint8Array(Buffer.concat(chunks)) };
}

/** A random used bitmap with about `density` of the blocks set. */
export function randomBitmap(rand: () => number, length: number, density: number): Bitmap {
  const b = new Bitmap(length);
  for (let i = 0; i < length; i++) if (rand() < density) b.set(i);
  return b;
}
