import { type BlockSource, checkRange } from '@diskube/core';
import { ByteLru } from './lru.js';
import { asCorrupt, checkInFile } from './read.js';

export type ContainerFormat = 'raw' | 'qcow2' | 'vdi' | 'vmdk' | 'vhd' | 'vhdx';

/**
 * The virtual disk inside a container: a `BlockSource` plus the ranges the container itself
 * knows to be zero (never allocated, or marked zero), which read as zeros without touching the
 * container file.
 */
export interface ContainerDisk extends BlockSource {
  readonly format: ContainerFormat;
  /**
   * Allocation granularity in bytes (qcow2 cluster, VDI/VHD/VHDX block, VMDK grain); the ranges
   * from `unallocatedRanges` are multiples of it except where clipped at the end of the disk.
   */
  readonly allocationUnit: number;
  /**
   * Sorted, coalesced `[offset, length]` ranges of the virtual disk that are unallocated or marked
   * zero in the container. Everything outside them may hold data (or zeros the container stored
   * explicitly). Walks the metadata tables once per call; memory is one table at a time.
   */
  unallocatedRanges(): AsyncIterable<[offset: number, length: number]>;
  /**
   * Sorted, coalesced ranges that this layer itself holds, masking whatever lies below it: data
   * (`zero` false) or ranges it marks zero (`zero` true, a qcow2 zero cluster). For an overlay
   * these are the only ranges where it can differ from its parent; for an image without a
   * parent, everything outside them reads as zeros. A raw disk holds all of itself.
   */
  layerRanges(): AsyncIterable<[offset: number, length: number, zero: boolean]>;
  /** The disk of the layer below (the backing file's), for an overlay. */
  readonly parent?: ContainerDisk;
}

/**
 * Where a stretch of the virtual disk starting at some offset comes from. Formats answer with
 * the longest run they can tell cheaply (at most to the end of one allocation unit).
 */
export type Run =
  | { kind: 'zero'; length: number }
  /**
   * Not held by this layer: the parent's bytes show through (zeros when there is no parent).
   * A `zero` run, by contrast, masks the parent (a qcow2 zero cluster, a VDI zero block).
   */
  | { kind: 'absent'; length: number }
  /** Bytes stored verbatim at `host` in `source` (the container file unless given). */
  | { kind: 'data'; length: number; host: number; source?: BlockSource }
  /**
   * Bytes inside a unit that must be decoded whole (a compressed cluster or grain): `key`
   * identifies the unit (the virtual offset where it starts), `at` is the offset of the run in it.
   */
  | { kind: 'unit'; length: number; key: number; at: number; load(): Promise<Uint8Array> };

export interface Mapper {
  readonly format: ContainerFormat;
  readonly size: number;
  readonly allocationUnit: number;
  /** The run at virtual `offset`, no longer than `max` (> 0). */
  runAt(offset: number, max: number): Promise<Run>;
  /**
   * Unallocated/zero ranges in order; may be uncoalesced, the wrapper merges and clips them.
   * The third element is true for ranges the layer does not hold (`absent` runs): with a
   * parent, only the part the parent leaves unallocated stays unallocated.
   */
  zeroRanges(): AsyncIterable<[number, number, absent?: boolean]>;
}

/** Host reads are merged while contiguous, up to this many bytes per read of the container. */
const MAX_MERGED_READ = 8 * 1024 * 1024;

/**
 * Turn a format's `Mapper` into a `ContainerDisk`: split reads into runs, merge runs that are
 * contiguous in the container into one read, fill zero runs, decode compressed units through a
 * small cache (sequential reads of a compressed cluster in pieces decode it once).
 */
export function mappedDisk(
  file: BlockSource,
  mapper: Mapper,
  parent?: ContainerDisk,
): ContainerDisk {
  const decoded = new ByteLru(4 * 1024 * 1024);
  const size = mapper.size;
  async function readHost(source: BlockSource, host: number, dst: Uint8Array): Promise<void> {
    // Host offsets come from the container's tables: one outside the file (even beyond 2^53,
    // which the source would call an invalid argument) is the container's corruption.
    const structure = `${mapper.format} data`;
    checkInFile(source.size, host, dst.length, structure);
    try {
      await source.read(host, dst);
    } catch (cause) {
      throw asCorrupt(cause, structure, host);
    }
  }
  return {
    format: mapper.format,
    size,
    allocationUnit: mapper.allocationUnit,
    async read(offset, dst) {
      checkRange(size, offset, dst.length, `${mapper.format} virtual disk`);
      let done = 0;
      while (done < dst.length) {
        const run = await mapper.runAt(offset + done, dst.length - done);
        if (!(run.length > 0) || run.length > dst.length - done) {
          throw new Error(`internal: ${mapper.format} mapper returned a bad run`);
        }
        if (run.kind === 'zero') {
          dst.fill(0, done, done + run.length);
          done += run.length;
        } else if (run.kind === 'absent') {
          // Extend while the layer keeps lacking data, then read that stretch from the parent
          // in one call; past the parent's end (a smaller parent) the disk reads zeros, as in
          // QEMU.
          let length = run.length;
          while (done + length < dst.length && length < MAX_MERGED_READ) {
            const next = await mapper.runAt(offset + done + length, dst.length - done - length);
            if (next.kind !== 'absent') break;
            length += next.length;
          }
          const at = offset + done;
          const inParent = parent ? Math.max(0, Math.min(length, parent.size - at)) : 0;
          if (inParent > 0) await parent!.read(at, dst.subarray(done, done + inParent));
          dst.fill(0, done + inParent, done + length);
          done += length;
        } else if (run.kind === 'unit') {
          const unit = await decoded.get(run.key, run.load);
          dst.set(unit.subarray(run.at, run.at + run.length), done);
          done += run.length;
        } else {
          // Extend the run while the next one continues it in the same file.
          const source = run.source ?? file;
          let length = run.length;
          while (done + length < dst.length && length < MAX_MERGED_READ) {
            const next = await mapper.runAt(offset + done + length, dst.length - done - length);
            if (
              next.kind !== 'data' ||
              (next.source ?? file) !== source ||
              next.host !== run.host + length
            ) {
              break;
            }
            length += next.length;
          }
          await readHost(source, run.host, dst.subarray(done, done + length));
          done += length;
        }
      }
    },
    ...(parent ? { parent } : {}),
    layerRanges: () => coalesce(heldRanges(mapper.zeroRanges(), size)),
    async *unallocatedRanges() {
      let start = -1;
      let end = -1;
      const ranges = parent ? throughParent(mapper.zeroRanges(), parent) : mapper.zeroRanges();
      for await (const [o, l] of ranges) {
        if (l <= 0 || o >= size) continue;
        const e = Math.min(size, o + l);
        if (o === end) {
          end = e;
          continue;
        }
        if (start >= 0) yield [start, end - start] as [number, number];
        start = o;
        end = e;
      }
      if (start >= 0) yield [start, end - start] as [number, number];
    },
  };
}

/** The raw format: the file is the disk, and nothing is known to be unallocated. */
export function rawDisk(file: BlockSource): ContainerDisk {
  return {
    format: 'raw',
    size: file.size,
    allocationUnit: 512,
    read: (offset, dst) => file.read(offset, dst),
    async *unallocatedRanges() {},
    async *layerRanges() {
      if (file.size > 0) yield [0, file.size, false] as [number, number, boolean];
    },
  };
}

/**
 * What a layer holds, from its mapper's zero ranges (sorted, maybe overlapping or unmerged):
 * gaps are data, ranges it marks zero are zero, ranges it lacks (`absent`) are left out.
 */
async function* heldRanges(
  ranges: AsyncIterable<[number, number, boolean?]>,
  size: number,
): AsyncIterable<[number, number, boolean]> {
  let at = 0; // everything below `at` is accounted for
  for await (const [o, l, absent] of ranges) {
    const start = Math.max(o, at);
    const end = Math.min(size, o + l);
    if (end <= start) continue;
    if (start > at) yield [at, start - at, false];
    if (!absent) yield [start, end - start, true];
    at = end;
  }
  if (at < size) yield [at, size - at, false];
}

/** Merge adjacent ranges of the same kind. */
async function* coalesce(
  ranges: AsyncIterable<[number, number, boolean]>,
): AsyncIterable<[number, number, boolean]> {
  let cur: [number, number, boolean] | undefined;
  for await (const [o, l, zero] of ranges) {
    if (cur && cur[0] + cur[1] === o && cur[2] === zero) {
      cur[1] += l;
      continue;
    }
    if (cur) yield cur;
    cur = [o, l, zero];
  }
  if (cur) yield cur;
}

/**
 * A layer's zero ranges over its parent: ranges the layer marks zero stay; ranges it does not
 * hold keep only the parts the parent leaves unallocated (or that lie past the parent's end).
 * Both streams are sorted, so one pass with a cursor into the parent's ranges does.
 */
async function* throughParent(
  ranges: AsyncIterable<[number, number, boolean?]>,
  parent: ContainerDisk,
): AsyncIterable<[number, number]> {
  const below = parent.unallocatedRanges()[Symbol.asyncIterator]();
  let cur: [number, number] | undefined; // [start, end) of the parent's current range
  let exhausted = false;
  const advance = async () => {
    const next = await below.next();
    if (next.done) {
      exhausted = true;
      cur = undefined;
    } else cur = [next.value[0], next.value[0] + next.value[1]];
  };
  await advance();
  try {
    yield* intersect();
  } finally {
    await below.return?.();
  }
  async function* intersect(): AsyncIterable<[number, number]> {
    for await (const [o, l, absent] of ranges) {
      if (!absent) {
        yield [o, l];
        continue;
      }
      const end = o + l;
      // Past the parent's end everything reads as zeros.
      const tail = Math.max(o, parent.size);
      let at = o;
      while (at < Math.min(end, parent.size)) {
        while (!exhausted && cur![1] <= at) await advance();
        if (exhausted || cur![0] >= Math.min(end, parent.size)) break;
        const s = Math.max(at, cur![0]);
        const e = Math.min(end, parent.size, cur![1]);
        if (e > s) yield [s, e - s];
        at = e;
      }
      if (tail < end) yield [tail, end - tail];
    }
  }
}
