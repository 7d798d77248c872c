import { describe, expect, it } from 'vitest';
import { blobSource } from './blob.js';
import { DiskubeError } from './errors.js';
import { readBytes } from './source.js';
import { randomBytes } from './test.js';

async function rejectionOf(promise: Promise<unknown>): Promise<DiskubeError> {
  try {
    await promise;
  } catch (error) {
    if (DiskubeError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('blobSource', () => {
  const bytes = randomBytes(5000, 7);
  const source = blobSource(new Blob([bytes]));

  it('reads exactly the bytes asked for, lazily through slice', async () => {
    expect(source.size).toBe(5000);
    expect(await readBytes(source, 4096, 904)).toEqual(bytes.subarray(4096, 5000));
    expect(await readBytes(source, 0, 0)).toEqual(new Uint8Array(0));
  });

  it('rejects reads past the end with IO / out-of-range', async () => {
    const error = await rejectionOf(readBytes(source, 4999, 2));
    expect(error.code).toBe('IO');
    expect(error.reason).toBe('out-of-range');
  });

  it('turns a short or failing slice into IO errors', async () => {
    const short = blobSource({
      size: 100,
      slice: () => ({ arrayBuffer: async () => new ArrayBuffer(3) }),
    });
    expect((await rejectionOf(readBytes(short, 0, 10))).reason).toBe('short-read');
    const failing = blobSource({
      size: 100,
      slice: () => ({
        arrayBuffer: async () => {
          throw new Error('NotReadableError');
        },
      }),
    });
    const error = await rejectionOf(readBytes(failing, 0, 10));
    expect(error.code).toBe('IO');
    expect(error.reason).toBe('read-failed');
  });
});
