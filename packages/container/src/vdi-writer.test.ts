import { describe, expect, it } from 'vitest';
import { random } from './images.test-support.js';
import { parseVdiHeader } from './vdi.js';
import {
  encodeVdiBlockMap,
  encodeVdiHeader,
  VDI_BLOCK_FREE,
  vdiWriterLayout,
} from './vdi-writer.js';

const uuid = (seed: number) => random(16, seed);

describe('VDI writer encoders', () => {
  it('lays out 1 MiB blocks with the data area aligned to 1 MiB', () => {
    expect(vdiWriterLayout(10 * 2 ** 20 + 1000)).toEqual({
      diskSize: 10 * 2 ** 20 + 1024,
      blockSize: 2 ** 20,
      blocks: 11,
      offsetBlocks: 512,
      offsetData: 2 ** 20,
    });
    // 2 TiB: 2^21 blocks, an 8 MiB block map.
    expect(vdiWriterLayout(2 ** 41).offsetData).toBe(9 * 2 ** 20);
  });

  it('the header parses back with our reader and carries QEMU-compatible fields', () => {
    const layout = vdiWriterLayout(2 ** 33 + 512);
    const bytes = encodeVdiHeader(layout, {
      blocksAllocated: 7,
      uuidImage: uuid(1),
      uuidLastSnap: uuid(2),
    });
    expect(parseVdiHeader(bytes)).toMatchObject({
      imageType: 'dynamic',
      parent: undefined,
      offsetBlocks: 512,
      offsetData: 2 ** 20, // 8193 blocks × 4 bytes + 512 fit in the first MiB
      diskSize: 2 ** 33 + 512,
      blockSize: 2 ** 20,
      blockExtra: 0,
      blocks: 8193,
    });
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(0x44, true)).toBe(0x00010001);
    expect(view.getUint32(0x48, true)).toBe(0x180);
    expect(view.getUint32(0x168, true)).toBe(512); // sector size QEMU requires
    expect(view.getUint32(0x184, true)).toBe(7);
    expect(bytes.subarray(0x188, 0x198)).toEqual(uuid(1));
    expect(bytes.subarray(0x1a8, 0x1c8).every((b) => b === 0)).toBe(true); // no parent
  });

  it('the block map marks absent entries free and pads to a sector', () => {
    const layout = vdiWriterLayout(3 * 2 ** 20);
    const map = new DataView(encodeVdiBlockMap(layout, [VDI_BLOCK_FREE, 0]).buffer);
    expect(map.byteLength).toBe(512);
    expect(map.getUint32(0, true)).toBe(VDI_BLOCK_FREE);
    expect(map.getUint32(4, true)).toBe(0);
    expect(map.getUint32(8, true)).toBe(VDI_BLOCK_FREE);
    expect(map.getUint32(12, true)).toBe(0);
  });
});
