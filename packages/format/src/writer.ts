import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';
import { Bitmap } from '@diskube/bitmap';
import { type BlockSource, InvalidArgumentError } from '@diskube/core';
import { encodeBitmap } from './bitmap-codec.js';
import { bytesEqual, toHex } from './bytes.js';
import { ChainState } from './chain.js';
import { type ByteRange, rangesToBlocks } from './changed-ranges.js';
import { type CompressOptions, DEFAULT_ZSTD_LEVEL } from './compress.js';
import { type CompressedFrame, CompressPool } from './compress-pool.js';
import { crc32c } from './crc32c.js';
import { blockDigest, isZeroBlock } from './digest.js';
import { encodeFooter, type SectionLocation } from './footer.js';
import { encodeFrameIndex, type FrameEntry } from './frame-index.js';
import {
  DIGEST_LENGTH,
  DIGEST_SHA256_128,
  encodeHeader,
  geometryProblem,
  MAX_FRAME_BYTES,
} from './header.js';
import { fileSink, type Sink, streamSink } from './io.js';
import type { BackupReader, Progress } from './reader.js';
import {
  ENCODING_RAW,
  encodeSection,
  encodeSectionHeader,
  SECTION_OVERHEAD,
  type SectionTag,
} from './section.js';

/** Frames hold about this many bytes of blocks by default. */
export const DEFAULT_FRAME_BYTES = 1 << 20;
/** Source reads are batched up to this many bytes of contiguous blocks. */
const READ_BATCH_BYTES = 4 << 20;
/** Below this many bytes to read, compression stays on the calling thread (workers cost ~50 ms). */
const THREADS_FROM_BYTES = 16 << 20;
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
  /** Blocks per frame; default about 1 MiB of blocks. */
  blocksPerFrame?: number;
  meta?: BackupMeta;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Worker threads for zstd; 0 compresses on the calling thread. Default: one less than the
   * cores (at least 1) for backups reading 16 MiB or more, else 0. The output is the same.
   */
  threads?: number;
  /** Fixed identity (tests, reproducible examples); default 16 random bytes. */
  backupId?: Uint8Array;
}

export interface IncrementalOptions extends WriteOptions {
  /**
   * The parent and its ancestors, oldest first: a snapshot, then each incremental made from the
   * one before; the last is the parent of the new backup. Only their bitmaps and digest tables
   * are used (an incremental's table covers only its stored blocks, so the parent state's
   * digests are gathered from the whole chain); no block data is read from them.
   */
  chain: readonly BackupReader[];
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
  storedBlocks: number;
  frames: number;
}

export function writeSnapshot(options: WriteOptions): Promise<WriteResult> {
  return writeBackup(options, null);
}

export function writeIncremental(options: IncrementalOptions): Promise<WriteResult> {
  return writeBackup(options, options);
}

class DigestList {
  private readonly chunks: Uint8Array[] = [];
  private current = new Uint8Array(DIGEST_CHUNK);
  private used = 0;
  length = 0;
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
  parts(): Uint8Array[] {
    return [...this.chunks, this.current.subarray(0, this.used)];
  }
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

  // The parent's state: used and zero bitmaps and a digest per used non-zero block.
  const parent = inc === null ? null : ChainState.fromChain(inc.chain);
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
  // Blocks to read: every used block, or with a dirty list only the listed ones plus blocks that
  // were not used in the parent (the parent has no digest for them).
  let toRead = used;
  if (parent !== null && inc?.changedRanges !== undefined) {
    toRead = rangesToBlocks(inc.changedRanges, blockSize, blockCount)
      .or(used.clone().andNot(parent.used))
      .and(used);
  }

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
  try {
    const bytesTotal = toRead.count() * blockSize + (tailStored ? tailLength : 0);
    let bytesDone = 0;
    let bytesFromSource = 0;
    const progress = (n: number) => {
      bytesDone += n;
      options.onProgress?.({ bytesDone, bytesTotal });
    };
    await sink.write(header);

    const zero = new Bitmap(blockCount);
    const changed = parent === null ? null : new Bitmap(blockCount);
    const digests = new DigestList();
    const threads =
      options.threads ??
      (compress.type === 'zstd' && bytesTotal >= THREADS_FROM_BYTES
        ? Math.max(1, availableParallelism() - 1)
        : 0);
    pool = new CompressPool(compress, threads);
    const frames: FrameEntry[] = [];
    // Frames being compressed, oldest first; written to the sink in this order.
    const inflight: Promise<CompressedFrame & { blockCount: number }>[] = [];
    const maxInflight = Math.max(1, 2 * threads);
    let frameBuffer = new Uint8Array(blocksPerFrame * blockSize);
    let frameBlocks = 0;
    let storedBlocks = 0;
    const writeOldestFrame = async () => {
      const f = await inflight.shift()!;
      frames.push({
        offset: sink.position,
        storedLength: f.stored.length,
        blockCount: f.blockCount,
        crc: crc32c(f.stored),
        method: f.method,
      });
      await sink.write(f.stored);
    };
    const flushFrame = async () => {
      if (frameBlocks === 0) return;
      const blocks = frameBlocks;
      const raw =
        blocks === blocksPerFrame ? frameBuffer : frameBuffer.slice(0, blocks * blockSize);
      const pending = pool!.compress(raw).then((f) => ({ ...f, blockCount: blocks }));
      pending.catch(() => {}); // awaited in order by writeOldestFrame; avoid an unhandled rejection meanwhile
      inflight.push(pending);
      // The pool owns the old buffer now (a worker may hold it).
      frameBuffer = new Uint8Array(blocksPerFrame * blockSize);
      frameBlocks = 0;
      while (inflight.length > maxInflight) await writeOldestFrame();
    };
    const storeBlock = async (block: Uint8Array, digest: Uint8Array) => {
      // The digest table lists the stored blocks only, in stored order (SPEC.md §6.5).
      digests.push(digest);
      frameBuffer.set(block, frameBlocks * blockSize);
      frameBlocks++;
      storedBlocks++;
      if (frameBlocks === blocksPerFrame) await flushFrame();
    };

    const processBlock = async (i: number, block: Uint8Array) => {
      if (isZeroBlock(block)) {
        zero.set(i);
        if (parent !== null && !(parent.used.get(i) && parent.zero.get(i))) changed!.set(i);
        return;
      }
      const d = blockDigest(block);
      if (parent !== null) {
        // Calls come in ascending block order, so the state's digest cursor only advances.
        const before = parent.digestOf(i);
        if (before !== null && bytesEqual(before, d)) return;
        changed!.set(i);
      }
      await storeBlock(block, d);
    };
    const maxBatch = Math.max(1, Math.floor(READ_BATCH_BYTES / blockSize));
    const batchList = readBatches(toRead, maxBatch, Math.floor(MAX_READ_GAP_BYTES / blockSize));
    // Two buffers: one being hashed, one being filled by the next read.
    const buffers = [new Uint8Array(maxBatch * blockSize), new Uint8Array(maxBatch * blockSize)];
    let flip = 0;
    const startRead = (
      batch: [number, number] | undefined,
    ): Promise<[number, number, Uint8Array]> | null => {
      if (batch === undefined) return null;
      const [first, count] = batch;
      const buf = buffers[flip]!.subarray(0, count * blockSize);
      flip ^= 1;
      return source.read(first * blockSize, buf).then(() => [first, count, buf]);
    };
    let reading = startRead(batchList.next().value ?? undefined);
    while (reading !== null) {
      signal?.throwIfAborted();
      const [first, count, buf] = await reading;
      reading = startRead(batchList.next().value ?? undefined);
      bytesFromSource += buf.length;
      let wanted = 0;
      for (let j = 0; j < count; j++) {
        const i = first + j;
        if (toRead.get(i)) {
          await processBlock(i, buf.subarray(j * blockSize, (j + 1) * blockSize));
          wanted++;
        }
      }
      progress(wanted * blockSize);
    }
    if (parent !== null && toRead !== used) {
      // Used now and in the parent, outside the dirty list (gap reads included): unchanged by
      // the caller's word, so they keep the parent's zero bit. They need no digest: the digest
      // table lists stored blocks only.
      zero.or(used.clone().andNot(toRead).and(parent.zero));
    }
    await flushFrame();
    while (inflight.length > 0) await writeOldestFrame();
    const framesOffset = header.length;
    const framesLength = sink.position - framesOffset;

    let freed: Bitmap | null = null;
    if (parent !== null) {
      freed = parent.used.clone().andNot(used);
      changed!.or(freed);
    }

    const sections = {
      USED: null,
      CHNG: null,
      FREE: null,
      ZERO: null,
      DGST: null,
      FIDX: null,
      TAIL: null,
    } as Record<SectionTag, SectionLocation | null>;
    const putSection = async (tag: SectionTag, encoding: number, payload: Uint8Array) => {
      const bytes = encodeSection(tag, encoding, payload);
      sections[tag] = { offset: sink.position, length: bytes.length };
      await sink.write(bytes);
    };
    /** A section streamed in parts (digest table, tail): the CRC runs over the pieces. */
    const putStreamed = async (
      tag: SectionTag,
      length: number,
      parts: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    ) => {
      const offset = sink.position;
      const head = encodeSectionHeader(tag, ENCODING_RAW, length);
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
      sections[tag] = { offset, length: length + SECTION_OVERHEAD };
    };
    const putBitmap = async (tag: SectionTag, bitmap: Bitmap) => {
      const { encoding, payload } = encodeBitmap(bitmap);
      await putSection(tag, encoding, payload);
    };

    await putBitmap('USED', used);
    if (changed !== null && freed !== null) {
      await putBitmap('CHNG', changed);
      await putBitmap('FREE', freed);
    }
    await putBitmap('ZERO', zero);
    await putStreamed('DGST', digests.length, digests.parts());
    await putSection('FIDX', ENCODING_RAW, encodeFrameIndex(frames));
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
      await putStreamed('TAIL', tailLength, tailParts());
    }
    const fileLength = sink.position + 0xc0;
    await sink.write(
      encodeFooter({
        backupId,
        fileLength,
        frameCount: frames.length,
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
      usedBlocks: used.count(),
      zeroBlocks: zero.count(),
      changedBlocks: changed?.count() ?? null,
      storedBlocks,
      frames: frames.length,
    };
  } catch (error) {
    await sink.abort(error);
    throw error;
  } finally {
    await pool?.close();
  }
}
