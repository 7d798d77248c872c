import { describe, expect, it } from 'vitest';
import { Compressor } from 'zstd-napi';
import { type ChunkCodec, decodeObject, encodeObject, ObjectType, sha256Hex } from './object.js';
import { zstdCodec } from './zstd.js';

// An object's zstd frame is inflated into exactly the raw length of its envelope: a frame that
// declares another size, or none, or is followed by more bytes, is CORRUPT `decompress` before
// anything of its declared size is allocated.

const raw = Uint8Array.from({ length: 256 * 1024 }, (_, i) => (i >> 9) & 0xff);
const codec = zstdCodec();

/** zstd, with the frame's content size left out, or with a second copy of the frame after it. */
function writer(shape: 'no-size' | 'two-frames'): ChunkCodec {
  const c = new Compressor();
  c.setParameters({ compressionLevel: 3, contentSizeFlag: shape !== 'no-size' });
  return {
    ...codec,
    compress(bytes) {
      const frame = c.compress(Buffer.from(bytes));
      return new Uint8Array(shape === 'two-frames' ? Buffer.concat([frame, frame]) : frame);
    },
  };
}

describe('zstd objects', () => {
  it('round-trips an object through the codec', async () => {
    const object = encodeObject(ObjectType.chunk, raw, codec);
    expect(object.length).toBeLessThan(raw.length);
    const id = await sha256Hex(raw);
    expect(await decodeObject(object, ObjectType.chunk, 'chunks/x', id, codec)).toEqual(raw);
  });

  it.each([
    ['no-size', /declares no content size/],
    ['two-frames', /bytes follow the frame/],
  ] as const)('refuses a frame written %s as CORRUPT decompress', async (shape, cause) => {
    const object = encodeObject(ObjectType.chunk, raw, writer(shape));
    const id = await sha256Hex(raw);
    const error = await decodeObject(object, ObjectType.chunk, 'chunks/x', id, codec).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'CORRUPT', reason: 'decompress' });
    expect(String((error as Error).cause)).toMatch(cause);
  });

  it('refuses an envelope whose raw length differs from what the frame declares', async () => {
    const object = encodeObject(ObjectType.chunk, raw, codec);
    new DataView(object.buffer).setBigUint64(8, BigInt(raw.length + 4096), true);
    const error = await decodeObject(object, ObjectType.chunk, 'chunks/x', null, codec).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'CORRUPT', reason: 'decompress' });
    expect(String((error as Error).cause)).toMatch(/declares 262144 content bytes, not 266240/);
  });
});
