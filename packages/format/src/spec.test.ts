import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { memorySource } from '@diskube/core';
import { describe, expect, test } from 'vitest';
import { Decompressor } from 'zstd-napi';
import { BackupReader } from './reader.js';
import { hexdump, specExample, specIncrementalExample } from './spec-example.js';
import { memoryWritable, prng, randomBitmap, randomBytesFrom } from './test-support.js';
import { writeIncremental, writeSnapshot } from './writer.js';

// A decoder written from SPEC.md alone: it imports nothing from the implementation (the writer is
// only used to produce files), has its own bit-at-a-time CRC32C, LEB128 and bitmap code, and
// rebuilds the state of a backup chain by the rules of §8.

function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

interface Decoded {
  kind: number;
  backupId: string;
  parentId: string;
  sourceSize: number;
  blockCount: number;
  blockSize: number;
  tailLength: number;
  strings: string[];
  U: boolean[];
  C: boolean[] | null;
  F: boolean[] | null;
  Z: boolean[];
  /** Blocks held as repeats (REPT, 2.2), each with the block number it repeats. */
  R: Map<number, number>;
  stored: Map<number, Uint8Array>;
  tail: Uint8Array | null;
}

function decode(file: Uint8Array): Decoded {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => Number(dv.getBigUint64(o, true));
  const hex = (o: number, n: number) => Buffer.from(file.subarray(o, o + n)).toString('hex');
  const ascii = (o: number, n: number) => Buffer.from(file.subarray(o, o + n)).toString('latin1');
  // §7 footer
  const F0 = file.length - 192;
  expect(ascii(F0, 8)).toBe('DKBKFOOT');
  expect(crc32cBitwise(file.subarray(F0, F0 + 0xbc))).toBe(u32(F0 + 0xbc));
  expect(u64(F0 + 0x18)).toBe(file.length);
  // §4 header
  expect(hex(0, 8)).toBe('444b424b0d0a1a0a');
  expect(u16(8)).toBe(2);
  const H = u32(0x0c);
  expect(crc32cBitwise(file.subarray(0, H - 4))).toBe(u32(H - 4));
  // §4: bit 0 of incompatFlags (2.1) says there is no digest table, bit 1 (2.2) that there is a
  // REPT section; no other bit is known.
  const incompat = u32(0x10);
  expect(incompat & ~3).toBe(0);
  const hasTable = (incompat & 1) === 0;
  const hasRepeats = (incompat & 2) !== 0;
  const kind = u32(0x14);
  const blockCount = u64(0x40);
  const blockSize = u32(0x48);
  const blocksPerFrame = u32(0x4c);
  const tailLength = u64(0x60);
  expect(blockCount * blockSize + tailLength).toBe(u64(0x38));
  expect([u16(0x5c), u16(0x5e)]).toEqual([1, 16]);
  const strings: string[] = [];
  let at = 0x80;
  for (let k = 0; k < 4; k++) {
    strings.push(Buffer.from(file.subarray(at, at + u32(0x70 + 4 * k))).toString('utf8'));
    at += u32(0x70 + 4 * k);
  }
  expect(at + 4).toBe(H);
  expect(hex(F0 + 8, 16)).toBe(hex(0x18, 16));
  expect(u64(F0 + 0xa0)).toBe(H);
  // §6 sections, back to back after the frames
  const tags = ['USED', 'CHNG', 'FREE', 'ZERO', 'DGST', 'FIDX', 'TAIL'];
  const payload: Record<string, { enc: number; bytes: Uint8Array }> = {};
  let next = H + u64(F0 + 0xa8);
  const section = (tag: string, off: number) => {
    expect(ascii(off, 4)).toBe(tag);
    const p = u64(off + 8);
    expect(crc32cBitwise(file.subarray(off, off + 16 + p))).toBe(u32(off + 16 + p));
    payload[tag] = { enc: u32(off + 4), bytes: file.subarray(off + 16, off + 16 + p) };
    return p + 20;
  };
  tags.forEach((tag, k) => {
    const off = u64(F0 + 0x30 + 16 * k);
    const len = u64(F0 + 0x38 + 16 * k);
    if (len === 0) return;
    expect(off).toBe(next);
    expect(section(tag, off)).toBe(len);
    next = off + len;
    // §6.8: REPT follows ZERO, outside the footer's table.
    if (tag === 'ZERO' && hasRepeats) next += section('REPT', next);
  });
  expect(next).toBe(F0);
  const bits = (tag: string): boolean[] | null => {
    const s = payload[tag];
    if (s === undefined) return null;
    const out: boolean[] = [];
    if (s.enc === 0) {
      for (let i = 0; i < blockCount; i++) out.push(((s.bytes[i >> 3]! >> (i & 7)) & 1) === 1);
      return out;
    }
    expect(s.enc).toBe(1);
    let p = 0;
    let set = false;
    while (p < s.bytes.length) {
      let v = 0;
      let mul = 1;
      for (;;) {
        const b = s.bytes[p++]!;
        v += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) break;
      }
      for (let j = 0; j < v; j++) out.push(set);
      set = !set;
    }
    expect(out.length).toBe(blockCount);
    return out;
  };
  const U = bits('USED')!;
  const Z = bits('ZERO')!;
  const C = bits('CHNG');
  const F = bits('FREE');
  expect(C !== null).toBe(kind === 2);
  // §6.8 repeated blocks: runs of (gap, 2 × count + mode, target) in LEB128, ascending.
  const R = new Map<number, number>();
  const leb = (bytes: Uint8Array, p: { at: number }) => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = bytes[p.at++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return v;
    }
  };
  if (hasRepeats) {
    const rept = payload.REPT!.bytes;
    const p = { at: 0 };
    let end = 0;
    while (p.at < rept.length) {
      const block = end + leb(rept, p);
      const kind = leb(rept, p);
      const target = leb(rept, p);
      const count = Math.floor(kind / 2);
      expect(count).toBeGreaterThan(0);
      for (let k = 0; k < count; k++) R.set(block + k, kind % 2 === 0 ? target + k : target);
      end = block + count;
    }
    expect(p.at).toBe(rept.length);
  }
  // §8 stored blocks (the held blocks but the repeated ones), §5 frames via §6.6 index
  const S: number[] = [];
  for (let i = 0; i < blockCount; i++) {
    const held = U[i] && !Z[i] && (C === null || C[i]);
    if (R.has(i)) {
      expect(held).toBe(true);
      // The target is a stored block before this one.
      expect(R.get(i)!).toBeLessThan(S.length);
      R.set(i, S[R.get(i)!]!);
    } else if (held) S.push(i);
  }
  expect(u64(F0 + 0x28)).toBe(S.length);
  // §6.5: one digest per stored block, entry o for the block of ordinal o; no DGST with bit 0.
  expect(payload.DGST !== undefined).toBe(hasTable);
  const digests = payload.DGST?.bytes ?? null;
  if (digests !== null) expect(digests.length).toBe(16 * S.length);
  const index = payload.FIDX!.bytes;
  const idv = new DataView(index.buffer, index.byteOffset, index.byteLength);
  const stored = new Map<number, Uint8Array>();
  const dz = new Decompressor();
  for (let k = 0; k * 24 < index.length; k++) {
    const e = k * 24;
    const off = Number(idv.getBigUint64(e, true));
    const len = idv.getUint32(e + 8, true);
    const count = idv.getUint32(e + 12, true);
    const bytes = file.subarray(off, off + len);
    expect(crc32cBitwise(bytes)).toBe(idv.getUint32(e + 16, true));
    const method = idv.getUint8(e + 20);
    const raw = method === 0 ? bytes : new Uint8Array(dz.decompress(bytes));
    expect(raw.length).toBe(count * blockSize);
    for (let j = 0; j < count; j++) {
      const d = k * blocksPerFrame + j;
      const i = S[d]!;
      const block = raw.slice(j * blockSize, (j + 1) * blockSize);
      if (digests !== null)
        expect(createHash('sha256').update(block).digest().subarray(0, 16).toString('hex')).toBe(
          Buffer.from(digests.subarray(16 * d, 16 * d + 16)).toString('hex'),
        );
      stored.set(i, block);
    }
  }
  expect(stored.size).toBe(S.length);
  for (const [i, from] of R) stored.set(i, stored.get(from)!);
  return {
    kind,
    backupId: hex(0x18, 16),
    parentId: hex(0x28, 16),
    sourceSize: u64(0x38),
    blockCount,
    blockSize,
    tailLength,
    strings,
    U,
    C,
    F,
    Z,
    R,
    stored,
    tail: payload.TAIL?.bytes ?? null,
  };
}

/** §8: the state of the last backup of `chain` (oldest first). */
function state(chain: Decoded[]): Uint8Array {
  const last = chain.at(-1)!;
  const out = new Uint8Array(last.sourceSize);
  for (let i = 0; i < last.blockCount; i++) {
    if (!last.U[i] || last.Z[i]) continue;
    for (let k = chain.length - 1; k >= 0; k--) {
      const b = chain[k]!;
      if (b.C === null || b.C[i]) {
        out.set(b.stored.get(i)!, i * last.blockSize);
        break;
      }
    }
  }
  if (last.tail !== null) out.set(last.tail, last.blockCount * last.blockSize);
  return out;
}

/** The first hex dump in SPEC.md after `marker`. */
function specDumpAfter(marker: string): string {
  const spec = readFileSync(new URL('../SPEC.md', import.meta.url), 'utf8');
  const section = spec.slice(spec.indexOf(marker));
  const start = section.indexOf('```\n') + 4;
  return section.slice(start, section.indexOf('\n```', start));
}

describe('SPEC.md', () => {
  test('the worked example is what the writer produces', async () => {
    const dump = specDumpAfter('## 11. Worked example');
    const bytes = await specExample();
    expect(hexdump(bytes)).toBe(dump);
    const d = decode(bytes);
    expect(d.strings).toEqual(['d.img', 'ext4', '', '{}']);
    expect([...d.stored.keys()]).toEqual([0, 3]);
    expect(Buffer.from(d.tail!).toString()).toBe('tail bytes here!');
  });

  test('the worked incremental is what the writer produces', async () => {
    const dump = specDumpAfter('The incremental, `day2.dkb`');
    const bytes = await specIncrementalExample();
    expect(hexdump(bytes)).toBe(dump);
    const parent = decode(await specExample());
    const d = decode(bytes);
    expect(d.strings).toEqual(['d.img', 'ext4', 'day1.dkb', '{}']);
    expect(d.parentId).toBe(parent.backupId);
    expect([...d.stored.keys()]).toEqual([2]);
    expect(d.C).toEqual([false, false, true, true]);
    expect(d.F).toEqual([false, false, false, true]);
    const want = new Uint8Array(4 * 512 + 16);
    want.fill(0x41, 0, 512);
    want.fill(0x42, 1024, 1536);
    want.set(new TextEncoder().encode('tail bytes here!'), 2048);
    expect(Buffer.compare(state([parent, d]), want)).toBe(0);
  });

  test('the worked example without its digest table', async () => {
    const dump = specDumpAfter('Without a digest table, `day1.dkb`');
    const bytes = await specExample({ digestTable: false });
    expect(hexdump(bytes)).toBe(dump);
    const d = decode(bytes);
    expect([...d.stored.keys()]).toEqual([0, 3]);
    // The same bytes as the example with a table but for the flag, the header CRC, the DGST
    // section and the footer's record of where the sections are.
    expect(bytes.length).toBe((await specExample()).length - (16 * 2 + 20));
  });

  test('the worked example with a repeated block', async () => {
    const dump = specDumpAfter('With a repeated block, `day1.dkb`');
    const bytes = await specExample({ repeatedA: true });
    expect(hexdump(bytes)).toBe(dump);
    const d = decode(bytes);
    expect([...d.R]).toEqual([[3, 0]]);
    expect([...d.stored.keys()]).toEqual([0, 3]);
    expect(Buffer.from(d.stored.get(3)!).toString()).toBe('A'.repeat(512));
  });

  test.each([
    [true, false],
    [false, false],
    [true, true],
    [false, true],
  ])(
    'an independent decoder restores every state of a chain (digest table: %s, repeats: %s)',
    async (digestTable, repeats) => {
      const rand = prng(2024);
      const bs = 1024;
      const n = 150;
      const image = randomBytesFrom(rand, n * bs + 700);
      for (let i = 0; i < n; i += 5) image.fill(0, i * bs, (i + 1) * bs);
      // Blocks of one byte value, repeating every 20 blocks.
      for (let i = 2; i < n; i += 5) image.fill(i % 20, i * bs, (i + 1) * bs);
      let used = randomBitmap(rand, n, 0.5);
      const decoded: Decoded[] = [];
      const chain: BackupReader[] = [];
      let repeated = 0;
      for (let step = 0; step < 4; step++) {
        if (step > 0) {
          for (let i = 0; i < n; i++) {
            const r = rand();
            if (r < 0.1) image.set(randomBytesFrom(rand, bs), i * bs);
            // A copy of another block, earlier or later.
            else if (r < 0.15) {
              const from = Math.floor(rand() * n);
              image.copyWithin(i * bs, from * bs, (from + 1) * bs);
            }
          }
          const flip = randomBitmap(rand, n, 0.1);
          used = used.clone();
          for (let i = 0; i < n; i++) if (flip.get(i)) used.get(i) ? used.clear(i) : used.set(i);
        }
        const out = memoryWritable();
        const common = {
          source: memorySource(image.slice()),
          used,
          blockSize: bs,
          out: out.stream,
          blocksPerFrame: 3,
          compress: step % 2 ? ({ type: 'none' } as const) : ({ type: 'zstd', level: 5 } as const),
          digestTable,
          repeats,
        };
        await (chain.length > 0
          ? writeIncremental({ ...common, chain: [...chain] })
          : writeSnapshot(common));
        const file = out.bytes();
        const d = decode(file);
        if (!repeats) expect(d.R.size).toBe(0);
        repeated += d.R.size;
        if (chain.length > 0) expect(d.parentId).toBe(chain.at(-1)!.backupId);
        decoded.push(d);
        chain.push(await BackupReader.fromSource(memorySource(file)));
        const want = image.slice();
        for (let i = 0; i < n; i++) if (!used.get(i)) want.fill(0, i * bs, (i + 1) * bs);
        expect(Buffer.compare(state(decoded), want)).toBe(0);
        if (d.F !== null)
          for (let i = 0; i < n; i++) expect(d.F[i]).toBe(decoded.at(-2)!.U[i]! && !d.U[i]);
      }
      if (repeats) expect(repeated).toBeGreaterThan(5);
    },
  );
});
