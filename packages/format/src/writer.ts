import { randomBytes } from 'node:crypto';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, InvalidArgumentError } from '@diskube/core';
import { RleEncoder, rleToRaw } from './bitmap-codec.js';
import { bytesEqual, toHex } from './bytes.js';
import { ChainState, type StateDigestSource } from './chain.js';
import { type ByteRange, rangesToBlockRuns } from './changed-ranges.js';
import { type CompressOptions, DEFAULT_ZSTD_LEVEL } from './compress.js';
import { type CompressedFrame, CompressPool } from './compress-pool.js';
import { crc32c } from './crc32c.js';
import { blockDigest, isZeroRange } from './digest.js';
import { encodeFooter, type SectionLocation } from './footer.js';
import { encodeFrameEntry } from './frame-index.js';
import {
  DIGEST_LENGTH,
  DIGEST_SHA256_128,
  encodeHeader,
  geometryProblem,
  MAX_FRAME_BYTES,
} from './header.js';
import { fileSink, type Sink, streamSink } from './io.js';
import {
  type BackupReader,
  checkWindowBlocks,
  DEFAULT_WINDOW_BLOCKS,
  type Progress,
  sliceBitmap,
} from './reader.js';
import { BlockIndex, RepeatEncoder } from './repeats.js';
import {
  type AnySectionTag,
  ENCODING_RAW,
  ENCODING_RLE,
  encodeSectionHeader,
  SECTION_OVERHEAD,
  type SectionTag,
} from './section.js';
import { Spill } from './spill.js';

/**
 * Frames hold about this many bytes of blocks by default. 4 MiB: zstd -3 (a 2 MiB window) then
 * loses nothing to frame boundaries against one stream (`bench:size`: 1 MiB frames +0.14 % vs
 * `partclone | zstd -3`, 4 MiB −0.01 %), and frames stay small enough to decompress one at a
 * time per worker.
 */
export const DEFAULT_FRAME_BYTES = 4 << 20;
/** Source reads are batched up to this many bytes of contiguous blocks. */
const READ_BATCH_BYTES = 4 << 20;
/** Below this many bytes to read, compression stays on the calling thread (workers cost ~50 ms). */
const THREADS_FROM_BYTES = 16 << 20;
/**
 * Most worker threads a backup starts unless told otherwise. Each keeps two frames in flight
 * (their raw and compressed bytes, about 16 MiB with 4 MiB frames) and one read batch (4 MiB), so
 * without a cap memory would grow with the host's cores (about 1.3 GiB on 64); 4 workers at zstd
 * -3 compress faster than most disks read.
 */
export const MAX_DEFAULT_THREADS = 4;

/** The worker threads a backup reading `bytes` uses by default (see `WriteOptions.threads`). */
export function defaultThreads(bytes: number, cores = availableParallelism()): number {
  return bytes >= THREADS_FROM_BYTES ? Math.min(cores, MAX_DEFAULT_THREADS) : 0;
}
/** Unneeded blocks read to join two runs into one read, at most. */
const MAX_READ_GAP_BYTES = 64 << 10;
/** Digests are collected in chunks of this many bytes. */
const DIGEST_CHUNK = 1 << 20;

export interface BackupMeta {
  /** Where the data came from (image path, VM disk name), for `info`. */
  sourceName?: string;
  /** Filesystem name from the driver, e.g. `ext4`. */
  filesystem?: string;
  /** Creation time; default now. */
  createdAt?: Date;
  /** Extra JSON facts (driver facts, warnings) kept in the header. */
  facts?: Record<string, unknown>;
}

export interface WriteOptions {
  source: BlockSource;
  /** One bit per block; `used.length` is the block count, covering bytes from offset 0. */
  used: Bitmap;
  blockSize: number;
  /**
   * Whether to keep the bytes after `used.length × blockSize` (core's `tail.used`). Default true
   * when there are any: keeping a few bytes too many is cheaper than losing a backup boot sector.
   */
  tailUsed?: boolean;
  /** A path (written atomically via a temporary name) or a stream (e.g. a pipe). */
  out: string | Writable;
  /** Replace an existing file at `out`. Default false. */
  overwrite?: boolean;
  compress?: CompressOptions;
  /** Blocks per frame; default about 4 MiB of blocks (`DEFAULT_FRAME_BYTES`). */
  blocksPerFrame?: number;
  meta?: BackupMeta;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Worker threads for zstd (and a snapshot's digests); 0 compresses on the calling thread.
   * Default: one per core, at most `MAX_DEFAULT_THREADS` (4), for backups reading 16 MiB or more,
   * else 0 (the calling thread only reads, checks for zeros and writes, about a quarter of the
   * work). Memory grows by about 20 MiB per thread. The output is the same.
   */
  threads?: number;
  /** Fixed identity (tests, reproducible examples); default 16 random bytes. */
  backupId?: Uint8Array;
  /**
   * Blocks handled at once (a positive multiple of 64); memory per window is about 2 bits and,
   * for an incremental or a snapshot finding repeats, 16 bytes of digests per block. An
   * incremental takes its chain readers'
   * (`openBackup`'s `windowBlocks`). Default 2^20.
   */
  windowBlocks?: number;
  /**
   * Keep a digest table in the file (16 bytes per stored block, format 2.0's layout). Default
   * false: the file is 0.4 % smaller (4 KiB blocks) and the next incremental takes the digests
   * from `stateDigests`' copy, or else reads the parent's blocks back from its frames. With a
   * table, any copy of the chain lets an incremental skip reading old data.
   */
  digestTable?: boolean;
  /**
   * Store a block identical to one already stored in this file once: a later copy in another
   * frame becomes a reference to it (format 2.2 REPT, SPEC.md §6.8; a copy inside the same frame
   * costs zstd less than the reference would). Blocks are matched by digest, through an
   * index of at most 24 MiB (about 4 GiB of distinct blocks; past that, some repeats are stored
   * again). Default true; false writes files that 2.1 readers read.
   */
  repeats?: boolean;
  /**
   * Receives the digests of the new backup's whole state (16 bytes per used non-zero block, in
   * ascending block order) while it is written, for a cache such as `StateDigestCache`: the next
   * incremental then needs neither a digest table nor the parent's blocks.
   */
  stateDigests?: StateDigestSink;
}

/** Where a writer sends the digests of the new backup's state (see `WriteOptions`). */
export interface StateDigestSink {
  write(digests: Uint8Array): Promise<void> | void;
}

export interface IncrementalOptions extends WriteOptions {
  /**
   * The parent and its ancestors, oldest first: a snapshot, then each incremental made from the
   * one before; the last is the parent of the new backup. The parent state's digests come from
   * `parentDigests` when given, else from the chain's digest tables (an incremental's table
   * covers only its stored blocks, so they are gathered from the whole chain), and for backups
   * without a table from their frames: the blocks of the parent's state they hold are read back.
   */
  chain: readonly BackupReader[];
  /** The parent's state digests from a cache (checked by its opener); see `StateDigestCache`. */
  parentDigests?: StateDigestSource | null;
  /** File name recorded as a hint to find the parent; default the parent's base name. */
  parentHint?: string;
  /**
   * Byte ranges that may have changed since the parent (a hypervisor's dirty list). When given,
   * only these ranges (and blocks newly used since the parent) are read; other blocks are taken
   * as unchanged. Without it every used block is read and compared by digest.
   */
  changedRanges?: readonly ByteRange[];
}

export interface WriteResult {
  kind: 'snapshot' | 'incremental';
  /** Hex of the new backup's id. */
  backupId: string;
  /** Path written, when `out` was a path. */
  path: string | null;
  fileLength: number;
  /** Bytes read from the source (needed blocks, small gaps read to join reads, the tail). */
  bytesRead: number;
  usedBlocks: number;
  zeroBlocks: number;
  /** Blocks changed since the parent (incrementals), including newly unused ones. */
  changedBlocks: number | null;
  /** Blocks in the frames. */
  storedBlocks: number;
  /** Blocks held as references to an identical block stored earlier in the file. */
  repeatedBlocks: number;
  frames: number;
  /**
   * Bytes read from the chain's frames to learn the parent state's digests (incrementals over
   * backups without a digest table and without a cached copy); 0 otherwise.
   */
  parentBytesRead: number;
}

export function writeSnapshot(options: WriteOptions): Promise<WriteResult> {
  return writeBackup(options, null);
}

export function writeIncremental(options: IncrementalOptions): Promise<WriteResult> {
  return writeBackup(options, options);
}

class DigestList {
  private chunks: Uint8Array[] = [];
  private current = new Uint8Array(DIGEST_CHUNK);
  private used = 0;
  length = 0;
  /** Hand every digest to `sink` and start over (keeping the current chunk's memory). */
  async drainTo(sink: StateDigestSink): Promise<void> {
    for (const part of this.parts()) if (part.length > 0) await sink.write(part.slice());
    this.chunks = [];
    this.used = 0;
    this.length = 0;
  }
  push(d: Uint8Array): void {
    if (this.used === DIGEST_CHUNK) {
      this.chunks.push(this.current);
      this.current = new Uint8Array(DIGEST_CHUNK);
      this.used = 0;
    }
    this.current.set(d, this.used);
    this.used += DIGEST_LENGTH;
    this.length += DIGEST_LENGTH;
  }
  /** Append several digests (a multiple of 16 bytes). */
  pushMany(ds: Uint8Array): void {
    for (let at = 0; at < ds.length; ) {
      if (this.used === DIGEST_CHUNK) {
        this.chunks.push(this.current);
        this.current = new Uint8Array(DIGEST_CHUNK);
        this.used = 0;
      }
      const take = Math.min(ds.length - at, DIGEST_CHUNK - this.used);
      this.current.set(ds.subarray(at, at + take), this.used);
      this.used += take;
      this.length += take;
      at += take;
    }
  }
  parts(): Uint8Array[] {
    return [...this.chunks, this.current.subarray(0, this.used)];
  }
}

/**
 * The digests of an incremental's new state over one window (blocks from `start`): each used
 * non-zero block's own digest when it changed (it is stored: `digests` lists those in order),
 * else the parent state's, which it still equals.
 */
function stateDigestsOf(
  start: number,
  used: Bitmap,
  zero: Bitmap,
  changed: Bitmap,
  digests: DigestList,
  parent: ChainState,
): Uint8Array {
  const digested = used.clone().andNot(zero);
  const out = new Uint8Array(digested.count() * DIGEST_LENGTH);
  const stored = concat(digests.parts(), digests.length);
  let at = 0;
  let storedAt = 0;
  for (const [s, len] of digested.runs()) {
    for (let j = s; j < s + len; j++, at += DIGEST_LENGTH) {
      if (changed.get(j)) {
        out.set(stored.subarray(storedAt, storedAt + DIGEST_LENGTH), at);
        storedAt += DIGEST_LENGTH;
        continue;
      }
      const d = parent.digestOf(start + j);
      if (d === null)
        throw new InvalidArgumentError(`block ${start + j} is unchanged but has no digest`, {
          reason: 'internal',
        });
      out.set(d, at);
    }
  }
  return out;
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * `[first, count]` source reads covering the set bits of `bits`, in order, each at most
 * `maxBlocks` long. Runs separated by at most `maxGap` clear blocks share one read: reading a
 * few unneeded blocks costs less than another round trip (ext4 and NTFS maps are fragmented).
 */
export function* readBatches(
  bits: Bitmap,
  maxBlocks: number,
  maxGap: number,
): Generator<[number, number]> {
  let first = -1;
  let end = -1;
  for (const [s, len] of bits.runs()) {
    let at = s;
    const runEnd = s + len;
    while (at < runEnd) {
      if (first >= 0 && at - end <= maxGap && at + 1 - first <= maxBlocks) {
        // Extend the current read over the gap and as much of this run as fits.
        const take = Math.min(runEnd - at, maxBlocks - (at - first));
        end = at + take;
        at += take;
        continue;
      }
      if (first >= 0) yield [first, end - first];
      const take = Math.min(runEnd - at, maxBlocks);
      first = at;
      end = at + take;
      at += take;
    }
  }
  if (first >= 0) yield [first, end - first];
}

async function writeBackup(
  options: WriteOptions,
  inc: IncrementalOptions | null,
): Promise<WriteResult> {
  const { source, used, blockSize, signal } = options;
  const blockCount = used.length;
  const tailOffset = blockCount * blockSize;
  const tailLength = source.size - tailOffset;
  const tailStored = tailLength > 0 && (options.tailUsed ?? true);
  const blocksPerFrame =
    options.blocksPerFrame ?? Math.max(1, Math.floor(DEFAULT_FRAME_BYTES / blockSize));
  const geometry = { sourceSize: source.size, blockCount, blockSize, blocksPerFrame, tailLength };
  const problem =
    tailLength < 0
      ? `${blockCount} blocks of ${blockSize} bytes exceed the source`
      : geometryProblem(geometry);
  if (problem !== null) throw new InvalidArgumentError(problem, { reason: 'bad-geometry' });
  if (blocksPerFrame * blockSize > MAX_FRAME_BYTES)
    throw new InvalidArgumentError('frames too large', { reason: 'bad-geometry' });
  const compress = options.compress ?? { type: 'zstd', level: DEFAULT_ZSTD_LEVEL };

  // The parent's state, resolved one window of blocks at a time from the chain's bitmaps and
  // digest tables.
  const parent =
    inc === null
      ? null
      : ChainState.fromChain(inc.chain, { stateDigests: inc.parentDigests ?? null });
  /** Bytes the chain's readers have read from their files (frames read back, for digests). */
  const chainBytesRead = () => inc?.chain.reduce((n, b) => n + b.stats.bytesRead, 0) ?? 0;
  const chainBytesBefore = chainBytesRead();
  const digestTable = options.digestTable ?? false;
  const repeats = options.repeats ?? true;
  const stateSink = options.stateDigests ?? null;
  if (parent !== null) {
    const ph = parent.newest.header;
    if (
      ph.blockSize !== blockSize ||
      ph.blockCount !== blockCount ||
      ph.sourceSize !== source.size
    ) {
      throw new InvalidArgumentError(
        `parent covers ${ph.blockCount} × ${ph.blockSize} bytes of ${ph.sourceSize}, this source ${blockCount} × ${blockSize} of ${source.size}: make a new snapshot`,
        { reason: 'geometry-mismatch' },
      );
    }
  }
  const windowBlocks =
    parent?.windowBlocks ?? checkWindowBlocks(options.windowBlocks ?? DEFAULT_WINDOW_BLOCKS);
  const windowCount = Math.ceil(blockCount / windowBlocks);
  // With a dirty list, only the listed blocks and the blocks that were not used in the parent
  // (the parent has no digest for them) are read.
  const rangeRuns =
    parent !== null && inc?.changedRanges !== undefined
      ? rangesToBlockRuns(inc.changedRanges, blockSize, blockCount)
      : null;
  let rangeCursor = 0;
  /** The blocks of window `w` to read (window-relative bits). */
  const toReadOf = async (w: number, usedWin: Bitmap, restart: boolean): Promise<Bitmap> => {
    if (rangeRuns === null) return usedWin;
    if (restart) rangeCursor = 0;
    const start = w * windowBlocks;
    const end = start + usedWin.length;
    const bits = new Bitmap(usedWin.length);
    while (rangeCursor < rangeRuns.length && rangeRuns[rangeCursor]![1] <= start) rangeCursor++;
    for (let k = rangeCursor; k < rangeRuns.length && rangeRuns[k]![0] < end; k++) {
      const s = Math.max(start, rangeRuns[k]![0]);
      bits.setRange(s - start, Math.min(end, rangeRuns[k]![1]) - s);
    }
    const parentWin = await parent!.newest.window(w);
    return bits.or(usedWin.clone().andNot(parentWin.used)).and(usedWin);
  };

  const backupId = options.backupId ?? randomBytes(16);
  const parentHint =
    inc === null ? '' : (inc.parentHint ?? parent!.newest.path.split(/[\\/]/).pop() ?? '');
  const header = encodeHeader({
    kind: parent === null ? 'snapshot' : 'incremental',
    backupId,
    parentId: parent === null ? new Uint8Array(16) : parent.newest.header.backupId,
    ...geometry,
    createdAt: (options.meta?.createdAt ?? new Date()).getTime(),
    compression: compress.type,
    compressionLevel: compress.type === 'zstd' ? (compress.level ?? DEFAULT_ZSTD_LEVEL) : 0,
    digestAlgorithm: DIGEST_SHA256_128,
    digestLength: DIGEST_LENGTH,
    tailStored,
    digestTable,
    repeats,
    sourceName: options.meta?.sourceName ?? '',
    filesystem: options.meta?.filesystem ?? '',
    parentHint,
    meta: options.meta?.facts ?? {},
  });

  let pool: CompressPool | null = null;
  const sink: Sink & { path?: string } =
    typeof options.out === 'string'
      ? await fileSink(options.out, { overwrite: options.overwrite ?? false })
      : streamSink(options.out);
  // The sections after the frames are built while the frames are written; they wait in spills
  // (memory, then a temporary file beside the output), so nothing grows with the used blocks.
  const spillDir = typeof options.out === 'string' ? dirname(options.out) : tmpdir();
  const spills: Spill[] = [];
  const spill = () => {
    const s = new Spill(spillDir);
    spills.push(s);
    return s;
  };
  try {
    let readBlocks = 0;
    if (rangeRuns === null) readBlocks = used.count();
    else
      for (let w = 0; w < windowCount; w++) {
        const start = w * windowBlocks;
        const usedWin = sliceBitmap(used, start, Math.min(windowBlocks, blockCount - start));
        readBlocks += (await toReadOf(w, usedWin, w === 0)).count();
      }
    const bytesTotal = readBlocks * blockSize + (tailStored ? tailLength : 0);
    let bytesDone = 0;
    let bytesFromSource = 0;
    const progress = (n: number) => {
      bytesDone += n;
      options.onProgress?.({ bytesDone, bytesTotal });
    };
    await sink.write(header);

    const usedSpill = spill();
    const zeroSpill = spill();
    const changedSpill = spill();
    const freedSpill = spill();
    const digestSpill = spill();
    const indexSpill = spill();
    const repeatSpill = spill();
    const repeatList = new RepeatEncoder(repeatSpill);
    // Where each distinct block went, to find repeats (bounded: see BlockIndex).
    const blockIndex = repeats ? new BlockIndex() : null;
    /** The ordinal (§5) the next block put in a frame gets. */
    let nextOrdinal = 0;
    const usedRle = new RleEncoder(blockCount, usedSpill);
    const zeroRle = new RleEncoder(blockCount, zeroSpill);
    const changedRle = parent === null ? null : new RleEncoder(blockCount, changedSpill);
    const freedRle = parent === null ? null : new RleEncoder(blockCount, freedSpill);
    let usedBlocks = 0;
    let zeroBlocks = 0;
    let changedBlocks = 0;
    const threads = options.threads ?? (compress.type === 'zstd' ? defaultThreads(bytesTotal) : 0);
    const frameBytes = blocksPerFrame * blockSize;
    pool = new CompressPool(compress, threads, frameBytes);
    // A snapshot stores every non-zero used block, so its digests can be taken with the frame
    // compression (on the workers when there are any). An incremental needs each digest before
    // it can tell whether the block changed, and finding repeats needs it before the block is
    // stored, so those digest as they read.
    const digestWithFrames = parent === null && !repeats && (digestTable || stateSink !== null);
    let frameCount = 0;
    // Frames being compressed, oldest first; written to the sink in this order.
    const inflight: Promise<CompressedFrame & { blockCount: number }>[] = [];
    const maxInflight = Math.max(1, 2 * threads);
    let frameBuffer = pool.acquire();
    let frameBlocks = 0;
    let storedBlocks = 0;
    const writeOldestFrame = async () => {
      const f = await inflight.shift()!;
      // The digest table lists the stored blocks only, in stored order (SPEC.md §6.5).
      if (f.digests !== null) {
        if (digestTable) await digestSpill.push(f.digests);
        // A snapshot's stored blocks are its whole state's used non-zero blocks.
        await stateSink?.write(f.digests);
      }
      await indexSpill.push(
        encodeFrameEntry({
          offset: sink.position,
          storedLength: f.stored.length,
          blockCount: f.blockCount,
          crc: crc32c(f.stored),
          method: f.method,
        }),
      );
      frameCount++;
      await sink.write(f.stored);
      f.release();
    };
    const flushFrame = async () => {
      if (frameBlocks === 0) return;
      const blocks = frameBlocks;
      const pending = pool!
        .compress(frameBuffer, blocks * blockSize, digestWithFrames ? blockSize : 0)
        .then((f) => Object.assign(f, { blockCount: blocks }));
      pending.catch(() => {}); // awaited in order by writeOldestFrame; avoid an unhandled rejection meanwhile
      inflight.push(pending);
      // The pool owns the old buffer now (a worker may hold it).
      frameBuffer = pool!.acquire();
      frameBlocks = 0;
      while (inflight.length > maxInflight) await writeOldestFrame();
    };
    /** Append `count` blocks of `buf` from byte `at` to the frames (one copy per frame touched). */
    const storeRun = async (buf: Uint8Array, at: number, count: number) => {
      storedBlocks += count;
      while (count > 0) {
        const take = Math.min(count, blocksPerFrame - frameBlocks);
        const bytes = take * blockSize;
        frameBuffer.set(buf.subarray(at, at + bytes), frameBlocks * blockSize);
        frameBlocks += take;
        at += bytes;
        count -= take;
        if (frameBlocks === blocksPerFrame) await flushFrame();
      }
    };

    // An incremental with workers has each read batch digested there, all blocks at once (a few
    // gap or zero blocks hashed for nothing cost less than hashing everything on this thread).
    const batchDigests = (parent !== null || repeats) && pool.digestsOnWorkers;
    const maxBatch = Math.max(1, Math.floor(READ_BATCH_BYTES / blockSize));
    const maxGap = Math.floor(MAX_READ_GAP_BYTES / blockSize);
    const freeBuffers: Uint8Array[] = [];
    // Batches being read (and digested), oldest first: one being scanned, the next being read;
    // with worker digests, two more per worker, so the digests of the next batches are ready
    // while this thread scans (one more per worker left it waiting: a generated 4 GiB snapshot
    // took 15.5 s instead of 12.6 s).
    const ahead = batchDigests ? 2 + 2 * threads : 1;
    interface Batch {
      first: number;
      count: number;
      /** The whole read buffer, reused once this batch is scanned. */
      whole: Uint8Array;
      digested: Uint8Array | null;
    }

    for (let w = 0; w < windowCount; w++) {
      signal?.throwIfAborted();
      const start = w * windowBlocks;
      const length = Math.min(windowBlocks, blockCount - start);
      const usedWin = sliceBitmap(used, start, length);
      const state = parent === null ? null : await parent.window(w);
      const toRead = await toReadOf(w, usedWin, w === 0);
      const zero = new Bitmap(length);
      const changed = parent === null ? null : new Bitmap(length);
      /** Digests of the blocks of the window this file holds (frames and repeats), in order. */
      const digests = new DigestList();
      /** Digests of the window's frame blocks, for the digest table (with repeats). */
      const framedDigests = repeats && digestTable ? new DigestList() : digests;

      /**
       * Whether block `start + j` (at byte `at` of `buf`) is stored; records zero and changed
       * bits. `digested` holds the digest of each block of `buf` when the workers made them.
       */
      const keepBlock = (
        j: number,
        buf: Uint8Array,
        at: number,
        digested: Uint8Array | null,
      ): boolean => {
        if (isZeroRange(buf, at, blockSize)) {
          zero.set(j);
          if (state !== null && !(state.used.get(j) && state.zero.get(j))) changed!.set(j);
          return false;
        }
        if (state === null && blockIndex === null) {
          nextOrdinal++;
          return true;
        }
        const k = (at / blockSize) * DIGEST_LENGTH;
        const d =
          digested === null
            ? blockDigest(buf.subarray(at, at + blockSize))
            : digested.subarray(k, k + DIGEST_LENGTH);
        if (state !== null) {
          // Calls come in ascending block order, so the state's digest cursor only advances.
          const before = parent!.digestOf(start + j);
          if (before !== null && bytesEqual(before, d)) return false;
          changed!.set(j);
        }
        // A snapshot needs its digests only for the state digest sink.
        if (state !== null || stateSink !== null) digests.push(d);
        if (blockIndex !== null) {
          // Only a copy of a block in an earlier frame: zstd already finds one inside the frame
          // being filled for less than a REPT entry costs.
          const target = blockIndex.find(d);
          if (target >= 0 && target < nextOrdinal - (nextOrdinal % blocksPerFrame)) {
            repeatList.add(start + j, target);
            return false;
          }
          if (target < 0) blockIndex.add(d, nextOrdinal);
          if (framedDigests !== digests) framedDigests.push(d);
        }
        nextOrdinal++;
        return true;
      };
      const batchList = readBatches(toRead, maxBatch, maxGap);
      const pendingBatches: Promise<Batch>[] = [];
      const startBatch = (): boolean => {
        const next = batchList.next();
        if (next.done) return false;
        const [first, count] = next.value;
        const length = count * blockSize;
        const whole = freeBuffers.pop() ?? new Uint8Array(maxBatch * blockSize);
        const read = source.read((start + first) * blockSize, whole.subarray(0, length));
        const batch: Promise<Batch> = batchDigests
          ? read
              .then(() => pool!.digestBlocks(whole, length, blockSize))
              .then(({ buffer, digests: d }) => ({ first, count, whole: buffer, digested: d }))
          : read.then(() => ({ first, count, whole, digested: null }));
        batch.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
        pendingBatches.push(batch);
        return true;
      };
      for (let k = 0; k <= ahead && startBatch(); k++);
      while (pendingBatches.length > 0) {
        signal?.throwIfAborted();
        const { first, count, whole, digested } = await pendingBatches.shift()!;
        startBatch();
        const buf = whole.subarray(0, count * blockSize);
        bytesFromSource += buf.length;
        let wanted = 0;
        // Consecutive stored blocks are copied into the frame together.
        let runStart = 0;
        let runLength = 0;
        for (const [s, len] of toRead.runs(first, first + count)) {
          wanted += len;
          for (let j = s; j < s + len; j++) {
            const at = (j - first) * blockSize;
            if (!keepBlock(j, buf, at, digested)) continue;
            if (runLength > 0 && runStart + runLength * blockSize === at) {
              runLength++;
              continue;
            }
            if (runLength > 0) await storeRun(buf, runStart, runLength);
            runStart = at;
            runLength = 1;
          }
        }
        if (runLength > 0) await storeRun(buf, runStart, runLength);
        await repeatList.drain();
        // A snapshot's digests are its state's, in order: they go to the sink batch by batch.
        if (state === null && stateSink !== null) await digests.drainTo(stateSink);
        freeBuffers.push(whole);
        progress(wanted * blockSize);
      }
      if (state !== null && toRead !== usedWin) {
        // Used now and in the parent, outside the dirty list (gap reads included): unchanged by
        // the caller's word, so they keep the parent's zero bit. They need no digest: the digest
        // table lists stored blocks only.
        zero.or(usedWin.clone().andNot(toRead).and(state.zero));
      }
      if (digestTable) for (const part of framedDigests.parts()) await digestSpill.push(part);
      if (stateSink !== null && state !== null)
        await stateSink.write(stateDigestsOf(start, usedWin, zero, changed!, digests, parent!));
      await usedRle.push(usedWin);
      await zeroRle.push(zero);
      usedBlocks += usedWin.count();
      zeroBlocks += zero.count();
      if (state !== null) {
        const freed = state.used.clone().andNot(usedWin);
        changed!.or(freed);
        await changedRle!.push(changed!);
        await freedRle!.push(freed);
        changedBlocks += changed!.count();
      }
    }
    await flushFrame();
    while (inflight.length > 0) await writeOldestFrame();
    if (storedBlocks !== nextOrdinal)
      throw new InvalidArgumentError(`${storedBlocks} blocks framed, ${nextOrdinal} numbered`, {
        reason: 'internal',
      });
    const framesOffset = header.length;
    const framesLength = sink.position - framesOffset;

    const sections = {
      USED: null,
      CHNG: null,
      FREE: null,
      ZERO: null,
      DGST: null,
      FIDX: null,
      TAIL: null,
    } as Record<SectionTag, SectionLocation | null>;
    /** A section streamed in parts: the CRC runs over the pieces. */
    const putStreamed = async (
      tag: AnySectionTag,
      encoding: number,
      length: number,
      parts: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    ) => {
      const offset = sink.position;
      const head = encodeSectionHeader(tag, encoding, length);
      let crc = crc32c(head);
      await sink.write(head);
      let written = 0;
      for await (const part of parts) {
        crc = crc32c(part, crc);
        written += part.length;
        await sink.write(part);
      }
      if (written !== length)
        throw new InvalidArgumentError(`${tag} produced ${written} of ${length} bytes`, {
          reason: 'internal',
        });
      const tailCrc = new Uint8Array(4);
      new DataView(tailCrc.buffer).setUint32(0, crc, true);
      await sink.write(tailCrc);
      // REPT has no entry in the footer's table (SPEC.md §6.8).
      if (tag !== 'REPT') sections[tag] = { offset, length: length + SECTION_OVERHEAD };
    };
    /** A bitmap section from its run-length spill, in whichever encoding is shorter. */
    const putBitmap = async (tag: SectionTag, rle: RleEncoder, from: Spill) => {
      const { encoding, payloadLength } = await rle.finish();
      await putStreamed(
        tag,
        encoding,
        payloadLength,
        encoding === ENCODING_RLE ? from.read() : rleToRaw(from.read(), blockCount),
      );
    };

    await putBitmap('USED', usedRle, usedSpill);
    if (changedRle !== null && freedRle !== null) {
      await putBitmap('CHNG', changedRle, changedSpill);
      await putBitmap('FREE', freedRle, freedSpill);
    }
    await putBitmap('ZERO', zeroRle, zeroSpill);
    if (repeats)
      await putStreamed('REPT', ENCODING_RAW, await repeatList.finish(), repeatSpill.read());
    if (digestTable)
      await putStreamed('DGST', ENCODING_RAW, digestSpill.length, digestSpill.read());
    await putStreamed('FIDX', ENCODING_RAW, indexSpill.length, indexSpill.read());
    if (tailStored) {
      async function* tailParts() {
        const chunk = 1 << 20;
        for (let at = 0; at < tailLength; at += chunk) {
          signal?.throwIfAborted();
          const part = new Uint8Array(Math.min(chunk, tailLength - at));
          await source.read(tailOffset + at, part);
          bytesFromSource += part.length;
          progress(part.length);
          yield part;
        }
      }
      await putStreamed('TAIL', ENCODING_RAW, tailLength, tailParts());
    }
    const fileLength = sink.position + 0xc0;
    await sink.write(
      encodeFooter({
        backupId,
        fileLength,
        frameCount,
        storedBlockCount: storedBlocks,
        framesOffset,
        framesLength,
        sections,
      }),
    );
    await sink.finish();
    return {
      kind: parent === null ? 'snapshot' : 'incremental',
      backupId: toHex(backupId),
      path: typeof options.out === 'string' ? options.out : null,
      fileLength,
      bytesRead: bytesFromSource,
      usedBlocks,
      zeroBlocks,
      changedBlocks: parent === null ? null : changedBlocks,
      storedBlocks,
      repeatedBlocks: repeatList.count,
      frames: frameCount,
      parentBytesRead: chainBytesRead() - chainBytesBefore,
    };
  } catch (error) {
    await sink.abort(error);
    throw error;
  } finally {
    await pool?.close();
    await Promise.all(spills.map((s) => s.close()));
  }
}
