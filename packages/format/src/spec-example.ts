import { Bitmap } from '@diskube/bitmap';
import { memorySource } from '@diskube/core';
import { BackupReader } from './reader.js';
import { memoryWritable } from './test-support.js';
import { writeIncremental, writeSnapshot } from './writer.js';

function exampleImage(blockThree = 0x43): Uint8Array {
  const image = new Uint8Array(4 * 512 + 16);
  image.fill(0x41, 0, 512); // block 0: "AAAA…"
  image.fill(0x42, 1024, 1536); // block 2: unused, not stored
  image.fill(blockThree, 1536, 2048); // block 3: "CCCC…"
  image.set(new TextEncoder().encode('tail bytes here!'), 2048);
  return image;
}

/**
 * The worked example of SPEC.md §11: 4 blocks of 512 bytes plus a 16-byte tail; blocks 0, 1 and 3
 * used, block 1 all zeros, no compression, 2 blocks per frame, fixed id and time, in 2.0's layout
 * (a digest table, no REPT section). With `digestTable: false`, the same snapshot without a DGST
 * section. With `repeatedA`, block 3 holds `A`s like block 0, the writer's default layout (no
 * table, repeats) with one block per frame: block 3 is a repeat of block 0.
 */
export async function specExample(
  options: { digestTable?: boolean; repeatedA?: boolean } = {},
): Promise<Uint8Array> {
  const out = memoryWritable();
  const repeats = options.repeatedA ?? false;
  await writeSnapshot({
    source: memorySource(exampleImage(repeats ? 0x41 : 0x43)),
    used: new Bitmap(4).set(0).set(1).set(3),
    blockSize: 512,
    out: out.stream,
    compress: { type: 'none' },
    // One block per frame in the example with a repeat: the writer leaves a copy inside the
    // frame being filled to zstd.
    blocksPerFrame: repeats ? 1 : 2,
    digestTable: options.digestTable ?? !repeats,
    repeats,
    backupId: Uint8Array.from({ length: 16 }, (_, i) => i),
    meta: { sourceName: 'd.img', filesystem: 'ext4', createdAt: new Date(Date.UTC(2026, 0, 1)) },
  });
  return out.bytes();
}

/**
 * The incremental of SPEC.md §11, made from `specExample()` (written as `day1.dkb`): block 2
 * became used (its `B`s are now data), block 3 became unused; blocks 0 and 1 are unchanged.
 */
export async function specIncrementalExample(): Promise<Uint8Array> {
  const parent = await BackupReader.fromSource(memorySource(await specExample()), 'day1.dkb');
  const out = memoryWritable();
  await writeIncremental({
    source: memorySource(exampleImage()),
    used: new Bitmap(4).set(0).set(1).set(2),
    blockSize: 512,
    out: out.stream,
    chain: [parent],
    compress: { type: 'none' },
    blocksPerFrame: 2,
    digestTable: true,
    repeats: false,
    backupId: Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i),
    meta: { sourceName: 'd.img', filesystem: 'ext4', createdAt: new Date(Date.UTC(2026, 0, 2)) },
  });
  return out.bytes();
}

/** `hexdump -C` style lines, repeated lines collapsed to `*`. */
export function hexdump(bytes: Uint8Array): string {
  const lines: string[] = [];
  let previous = '';
  let starred = false;
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0'));
    const body = `${hex.slice(0, 8).join(' ')}  ${hex.slice(8).join(' ')}`.padEnd(48);
    const text = [...row]
      .map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.'))
      .join('');
    const key = `${body}|${text}|`;
    if (key === previous && row.length === 16 && at + 16 < bytes.length) {
      if (!starred) lines.push('*');
      starred = true;
      continue;
    }
    starred = false;
    previous = key;
    lines.push(`${at.toString(16).padStart(8, '0')}  ${body} |${text}|`);
  }
  lines.push(bytes.length.toString(16).padStart(8, '0'));
  return lines.join('\n');
}
