import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { expect, test } from 'vitest';
import { BitmapSection, encodeBitmap, RleEncoder, rleToRaw } from './bitmap-codec.js';
import { sliceBitmap } from './reader.js';
import { ENCODING_RLE } from './section.js';
import { Spill } from './spill.js';
import { prng, randomBitmap, randomBytesFrom } from './test-support.js';

async function collect(parts: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  for await (const p of parts) out.push(p.slice());
  return new Uint8Array(Buffer.concat(out));
}

test('a spill returns what was pushed, in order, from memory and from its temporary file', async () => {
  const rand = prng(3);
  for (const limit of [0, 1 << 20, 64 << 20]) {
    const spill = new Spill(undefined, limit);
    const pieces: Uint8Array[] = [];
    for (let k = 0; k < 60; k++) {
      const p = randomBytesFrom(rand, Math.floor(rand() * 100_000));
      pieces.push(p);
      await spill.push(p);
    }
    const all = Buffer.concat(pieces);
    expect(spill.length).toBe(all.length);
    expect(Buffer.from(await collect(spill.read())).equals(all)).toBe(true);
    await spill.close();
  }
});

test('window by window: run-length encoding, its raw expansion and windowed decoding match the whole-bitmap codec', async () => {
  const rand = prng(9);
  const cases: Bitmap[] = [
    new Bitmap(64),
    new Bitmap(1000).setAll(),
    new Bitmap(100_000).setRange(10, 50_000),
    new Bitmap(20_000_000).setRange(3, 17_000_000),
  ];
  for (let k = 0; k < 30; k++)
    cases.push(randomBitmap(rand, 1 + Math.floor(rand() * 5000), rand() < 0.5 ? rand() : 0.01));
  for (const b of cases) {
    for (const win of b.length > 1e6 ? [1 << 20] : [64, 128, 1 << 20]) {
      const spill = new Spill();
      const enc = new RleEncoder(b.length, spill);
      for (let s = 0; s < b.length; s += win)
        await enc.push(sliceBitmap(b, s, Math.min(win, b.length - s)));
      const { encoding, payloadLength } = await enc.finish();
      const whole = encodeBitmap(b);
      expect(encoding).toBe(whole.encoding);
      const payload =
        encoding === ENCODING_RLE
          ? await collect(spill.read())
          : await collect(rleToRaw(spill.read(), b.length));
      expect(payload.length).toBe(payloadLength);
      expect(Buffer.from(payload).equals(Buffer.from(whole.payload))).toBe(true);
      // Read back window by window: once in order (checking), then in any order.
      const section = new BitmapSection(
        memorySource(payload),
        'test bitmap',
        0,
        payload.length,
        encoding,
        b.length,
        win,
      );
      const windows = Math.ceil(b.length / win);
      for (let w = 0; w < windows; w++)
        expect(
          (await section.next()).equals(sliceBitmap(b, w * win, Math.min(win, b.length - w * win))),
        ).toBe(true);
      for (let w = windows - 1; w >= 0; w -= 3)
        expect(
          (await section.window(w)).equals(
            sliceBitmap(b, w * win, Math.min(win, b.length - w * win)),
          ),
        ).toBe(true);
      await spill.close();
    }
  }
}, 60_000);
