import { describe, expect, it } from 'vitest';
import { Compressor } from 'zstd-napi';
import { decompressFrame } from './compress.js';
import { METHOD_ZSTD } from './frame-index.js';

// A stored frame is inflated into a buffer of exactly the raw length the frame index gives,
// never into what the frame itself declares (a damaged size field could declare gigabytes).

const raw = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) & 0xff);
const compressed = (contentSizeFlag: boolean) => {
  const c = new Compressor();
  c.setParameters({ compressionLevel: 3, contentSizeFlag });
  return new Uint8Array(c.compress(Buffer.from(raw)));
};

/** A frame holding `body` in one raw block, whose header declares `declared` bytes (RFC 8878). */
function declaring(declared: bigint, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + 1 + 1 + 8 + 3 + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 0xfd2fb528, true); // magic
  frame[4] = 0xc0; // descriptor: an 8-byte content size, not single-segment, no dictionary
  frame[5] = 0x00; // window descriptor: 1 KiB
  view.setBigUint64(6, declared, true);
  const block = 1 | (body.length << 3); // last block, raw
  frame.set([block & 0xff, (block >> 8) & 0xff, block >> 16], 14);
  frame.set(body, 17);
  return frame;
}

const inflate = (stored: Uint8Array, rawLength: number) =>
  decompressFrame(stored, METHOD_ZSTD, rawLength, 'frame 0', 4096);

describe('decompressFrame', () => {
  it('inflates a frame declaring its content size, hand-made or from zstd', () => {
    const body = raw.subarray(0, 16);
    expect(inflate(declaring(16n, body), 16)).toEqual(body);
    expect(inflate(compressed(true), raw.length)).toEqual(raw);
  });

  const twoFrames = () => {
    const one = compressed(true);
    const both = new Uint8Array(one.length * 2);
    both.set(one);
    both.set(one, one.length);
    return both;
  };
  it.each([
    ['declares no content size', () => compressed(false), raw.length, /declares no content size/],
    [
      'declares 1 TiB',
      () => declaring(2n ** 40n, raw.subarray(0, 16)),
      16,
      /declares 1099511627776 content bytes, expected 16/,
    ],
    ['declares one byte more', () => compressed(true), raw.length - 1, /declares 65536/],
    ['is followed by a second frame', twoFrames, raw.length, /does not decompress/],
    [
      'declares more than its blocks hold',
      () => declaring(17n, raw.subarray(0, 16)),
      17,
      /does not decompress/,
    ],
    ['is not a frame', () => raw.subarray(0, 32), 32, /header does not parse|declares no/],
  ])('refuses a frame that %s, as CORRUPT decompress at the frame', (_, make, length, message) => {
    let error: unknown;
    try {
      inflate(make(), length);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: 'CORRUPT',
      reason: 'decompress',
      structure: 'frame 0',
      offset: 4096,
    });
    expect((error as Error).message).toMatch(message);
  });
});
