import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HOST_LITTLE_ENDIAN, readBytes, writeBytes } from './bytes.js';

// Both paths must give the same words whatever the host: the little-endian one copies memory, the
// portable one places byte `k` at bits `8 × (k % 4)` of word `k / 4` arithmetically.
const paths = HOST_LITTLE_ENDIAN ? [true, false] : [false];

describe('byte conversion', () => {
  it('detects the host byte order', () => {
    const probe = new Uint32Array([0x04030201]);
    expect(new Uint8Array(probe.buffer)[0]).toBe(HOST_LITTLE_ENDIAN ? 1 : 4);
  });

  for (const littleEndian of paths) {
    it(`writeBytes (${littleEndian ? 'memory copy' : 'portable'}) places bit i at word i/32, bit i%32`, () => {
      fc.assert(
        fc.property(
          fc.uint32Array({ minLength: 1, maxLength: 12 }).chain((words) =>
            fc.tuple(
              fc.constant(words),
              fc
                .nat({ max: words.length * 4 })
                .chain((offset) =>
                  fc.tuple(
                    fc.constant(offset),
                    fc.uint8Array({ maxLength: words.length * 4 - offset }),
                  ),
                ),
            ),
          ),
          ([words, [offset, src]]) => {
            const expected = Uint32Array.from(words);
            for (let k = 0; k < src.length; k++) {
              for (let b = 0; b < 8; b++) {
                const i = (offset + k) * 8 + b;
                const w = Math.floor(i / 32);
                const bit = 2 ** (i % 32);
                const isSet = Math.floor(expected[w]! / bit) % 2 === 1;
                if (((src[k]! >> b) & 1) === 1 && !isSet) expected[w]! += bit;
                if (((src[k]! >> b) & 1) === 0 && isSet) expected[w]! -= bit;
              }
            }
            const actual = Uint32Array.from(words);
            writeBytes(actual, offset, src, littleEndian);
            expect(actual).toEqual(expected);
          },
        ),
      );
    });

    it(`readBytes (${littleEndian ? 'memory copy' : 'portable'}) inverts writeBytes`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), (src) => {
          const words = new Uint32Array(Math.ceil(src.length / 4));
          writeBytes(words, 0, src, littleEndian);
          const back = new Uint8Array(src.length);
          readBytes(words, back, littleEndian);
          expect(back).toEqual(src);
        }),
      );
    });
  }
});
