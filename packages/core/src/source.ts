import { CorruptError, InvalidArgumentError, IoError } from './errors.js';

/**
 * Random-access bytes: a disk image, a partition of one, a container's virtual disk.
 *
 * The contract is one method: `read(offset, dst)` fills `dst` with exactly `dst.length` bytes
 * starting at `offset`, or rejects with an `IoError` (code `IO`). It never returns short. Reading
 * past `size` is an `IoError` with reason `out-of-range`; parsers turn that into a `CorruptError`
 * naming the structure they were reading when a pointer from disk led them there.
 */
export interface BlockSource {
  /** Size of the source in bytes (a safe integer). */
  readonly size: number;
  /** Fill `dst` with the bytes at `[offset, offset + dst.length)`, or reject. */
  read(offset: number, dst: Uint8Array): Promise<void>;
  /** Release resources (file handles). Sources that hold none may omit it. */
  close?(): Promise<void>;
}

/** Read `length` bytes at `offset` into a new buffer. */
export async function readBytes(
  source: BlockSource,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const dst = new Uint8Array(length);
  await source.read(offset, dst);
  return dst;
}

/**
 * Reads the `length` bytes of a structure a pointer from disk led to. The pointer is meant to be
 * range-checked against the filesystem, and the filesystem against the source, so a read past the
 * end is a truncated image: CORRUPT `truncated` naming `structure` and `offset`, not a caller's
 * error.
 */
export async function readStructure(
  source: BlockSource,
  offset: number,
  length: number,
  structure: string,
): Promise<Uint8Array> {
  if (offset + length > source.size) {
    throw new CorruptError(`${structure} lies past the end of the source`, {
      structure,
      offset,
      reason: 'truncated',
    });
  }
  return readBytes(source, offset, length);
}

/** Reject reads that fall outside `[0, size)`; shared by every source implementation. */
export function checkRange(size: number, offset: number, length: number, what = 'source'): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`invalid read of ${length} bytes at ${offset} from ${what}`, {
      offset,
      reason: 'bad-range',
    });
  }
  if (offset + length > size) {
    throw new IoError(
      `read of ${length} bytes at ${offset} goes past the end of the ${what} (${size} bytes)`,
      { offset, reason: 'out-of-range' },
    );
  }
}

/** A source over bytes in memory. The bytes are not copied. */
export function memorySource(bytes: Uint8Array): BlockSource {
  return {
    size: bytes.length,
    async read(offset, dst) {
      checkRange(bytes.length, offset, dst.length, 'memory source');
      dst.set(bytes.subarray(offset, offset + dst.length));
    },
  };
}

/**
 * A window `[offset, offset + length)` of another source: a partition of a disk, a filesystem
 * inside a partition. Reads outside the window are rejected even if the parent has the bytes.
 */
export function sliceSource(parent: BlockSource, offset: number, length: number): BlockSource {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > parent.size
  ) {
    throw new InvalidArgumentError(
      `slice [${offset}, +${length}) does not fit a source of ${parent.size} bytes`,
      { offset, reason: 'bad-slice' },
    );
  }
  return {
    size: length,
    async read(at, dst) {
      checkRange(length, at, dst.length, 'slice');
      await parent.read(offset + at, dst);
    },
  };
}
