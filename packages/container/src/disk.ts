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
}

/**
 * Where a stretch of the virtual disk starting at some offset comes from. Formats answer with
 * the longest run they can tell cheaply (at most to the end of one allocation unit).
 */
export type Run =
  | { kind: 'zero'; length: number }
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
  /** Unallocated/zero ranges in order; may be uncoalesced, the wrapper merges and clips them. */
  zeroRanges(): AsyncIterable<[number, number]>;
}

/** Host reads are merged while contiguous, up to this many bytes per read of the container. */
const MAX_MERGED_READ = 8 * 1024 * 1024;

/**
 * Turn a format's `Mapper` into a `ContainerDisk`: split reads into runs, merge runs that are
 * contiguous in the container into one read, fill zero runs, decode compressed units through a
 * small cache (sequential reads of a compressed cluster in pieces decode it once).
 */
export function mappedDisk(file: BlockSource, mapper: Mapper): ContainerDisk {
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
    async *unallocatedRanges() {
      let start = -1;
      let end = -1;
      for await (const [o, l] of mapper.zeroRanges()) {
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
  };
}
