import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiskubeError, hasErrorCode } from './errors.js';
import { openFileSource } from './node.js';
import { memorySource, readBytes, sliceSource } from './source.js';
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

describe('memorySource', () => {
  const bytes = randomBytes(1000, 3);
  const source = memorySource(bytes);

  it('reads exactly the bytes asked for', async () => {
    expect(await readBytes(source, 10, 20)).toEqual(bytes.subarray(10, 30));
    expect(await readBytes(source, 1000, 0)).toEqual(new Uint8Array(0));
  });

  it('rejects reads past the end with IO / out-of-range and the offset', async () => {
    const error = await rejectionOf(readBytes(source, 990, 11));
    expect(error.code).toBe('IO');
    expect(error.reason).toBe('out-of-range');
    expect(error.offset).toBe(990);
  });

  it('rejects negative and fractional offsets with INVALID_ARGUMENT', async () => {
    expect((await rejectionOf(readBytes(source, -1, 1))).code).toBe('INVALID_ARGUMENT');
    expect((await rejectionOf(readBytes(source, 1.5, 1))).code).toBe('INVALID_ARGUMENT');
  });
});

describe('sliceSource', () => {
  const bytes = randomBytes(4096, 4);
  const parent = memorySource(bytes);

  it('maps offsets into the parent', async () => {
    const slice = sliceSource(parent, 512, 1024);
    expect(slice.size).toBe(1024);
    expect(await readBytes(slice, 0, 16)).toEqual(bytes.subarray(512, 528));
    expect(await readBytes(slice, 1008, 16)).toEqual(bytes.subarray(1520, 1536));
  });

  it('does not read outside its window even when the parent could', async () => {
    const slice = sliceSource(parent, 512, 1024);
    expect((await rejectionOf(readBytes(slice, 1020, 8))).reason).toBe('out-of-range');
  });

  it('refuses a window that does not fit the parent', () => {
    expect(() => sliceSource(parent, 4000, 200)).toThrow(DiskubeError);
    try {
      sliceSource(parent, -1, 10);
    } catch (error) {
      expect(hasErrorCode(error, 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('openFileSource', () => {
  it('reads a file with positioned reads and reports its size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diskube-core-'));
    try {
      const bytes = randomBytes(70_000, 5);
      const path = join(dir, 'img');
      await writeFile(path, bytes);
      const source = await openFileSource(path);
      expect(source.size).toBe(70_000);
      expect(await readBytes(source, 65_530, 4_470)).toEqual(bytes.subarray(65_530));
      const error = await rejectionOf(readBytes(source, 69_999, 2));
      expect(error.code).toBe('IO');
      await source.close();
      expect((await rejectionOf(readBytes(source, 0, 1))).reason).toBe('closed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails to open a missing file with IO / open', async () => {
    const error = await rejectionOf(openFileSource('/nonexistent/diskube'));
    expect(error.code).toBe('IO');
    expect(error.reason).toBe('open');
  });
});
