import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type CompressOptions, DEFAULT_ZSTD_LEVEL, FrameCompressor } from './compress.js';
import { blockDigestInto } from './digest.js';
import { METHOD_RAW, METHOD_ZSTD } from './frame-index.js';
import { DIGEST_LENGTH } from './header.js';

// Frame compression (and, on request, per-block digests) on worker threads, so zstd and SHA-256
// run on other cores while the main thread reads, checks for zeros and writes. Results come back
// in submission order. Frame buffers and compressed-output buffers travel by transfer, never by
// structured clone, and come back to the pool for reuse: a backup allocates a handful of
// MiB-sized buffers in all, not two per frame (fresh buffers per frame caused frequent
// "external memory pressure" scavenges on the main thread).
// The worker is inline code (eval) that loads zstd-napi's native binding by absolute path: no
// separate bundle entry, works from source too.

/**
 * The worker's code. Eval code runs as CommonJS or as ESM depending on the nearest package.json,
 * so it uses only dynamic import(), which works in both. It compresses with `compress2` on one
 * context set up like `FrameCompressor` (same level, no checksum), so its bytes are the same as
 * in-thread compression; its digests are `blockDigest` (SHA-256, first 16 bytes).
 */
function workerSource(bindingUrl: string): string {
  return `
Promise.all([
  import('node:worker_threads'),
  import('node:crypto'),
  import(${JSON.stringify(bindingUrl)}),
]).then(([wt, crypto, b]) => {
  const { parentPort, workerData } = wt;
  const binding = b.default ?? b;
  const cctx = new binding.CCtx();
  cctx.setParameter(binding.CParameter.compressionLevel, workerData.level);
  cctx.setParameter(binding.CParameter.checksumFlag, 0);
  const oneShot = typeof crypto.hash === 'function';
  const copy = Buffer.prototype.copy;
  parentPort.on('message', ({ id, raw, length, out, blockSize, compress }) => {
    const input = new Uint8Array(raw, 0, length);
    let digests = null;
    if (blockSize > 0) {
      const count = length / blockSize;
      const d = new Uint8Array(count * ${DIGEST_LENGTH});
      for (let k = 0, at = 0; k < count; k++, at += blockSize) {
        const block = input.subarray(at, at + blockSize);
        const h = oneShot
          ? crypto.hash('sha256', block, 'buffer')
          : crypto.createHash('sha256').update(block).digest();
        copy.call(h, d, k * ${DIGEST_LENGTH}, 0, ${DIGEST_LENGTH});
      }
      digests = d.buffer;
    }
    if (!compress) {
      parentPort.postMessage({ id, method: 0, storedLength: 0, raw, out: null, digests }, [raw, digests]);
      return;
    }
    const bound = binding.compressBound(length);
    if (out === null || out.byteLength < bound) out = new ArrayBuffer(bound);
    const n = cctx.compress2(new Uint8Array(out), input);
    // Not smaller than the input: the frame is stored raw (FrameCompressor does the same).
    const zstd = n < length;
    const transfer = [raw, out];
    if (digests !== null) transfer.push(digests);
    parentPort.postMessage(
      { id, method: zstd ? 1 : 0, storedLength: zstd ? n : length, raw, out, digests },
      transfer,
    );
  });
});
`;
}

export interface CompressedFrame {
  method: number;
  /** The frame's bytes as stored: valid until `release()`. */
  stored: Uint8Array;
  /** 16 bytes per block when digests were asked for, else null. */
  digests: Uint8Array | null;
  /** Give the frame's buffers back to the pool (after `stored` has been written). */
  release(): void;
}

interface WorkerReply {
  id: number;
  method: number;
  storedLength: number;
  raw: ArrayBuffer;
  out: ArrayBuffer | null;
  digests: ArrayBuffer | null;
}

/** Buffers kept for reuse, at most; more than the writer ever has in flight. */
const MAX_FREE_BUFFERS = 16;

/** Compresses frames in order, on `threads` workers, or in this thread when `threads` is 0. */
export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<
    number,
    {
      settle: (reply: WorkerReply) => void;
      reject: (e: unknown) => void;
      worker: number;
      cost: number;
    }
  >();
  /** Work queued on each worker (estimated cost), so a job goes to the least busy one. */
  private readonly queued: number[] = [];
  private readonly local: FrameCompressor | null;
  private readonly freeFrames: ArrayBuffer[] = [];
  private readonly freeOutputs: ArrayBuffer[] = [];
  private nextId = 0;
  private failure: unknown = null;

  /** `frameBytes`: the size of the buffers `acquire` hands out. */
  constructor(
    options: CompressOptions,
    threads: number,
    private readonly frameBytes: number,
  ) {
    if (options.type !== 'zstd' || threads <= 0) {
      this.local = new FrameCompressor(options);
      return;
    }
    this.local = null;
    const source = workerSource(
      pathToFileURL(createRequire(import.meta.url).resolve('zstd-napi/binding')).href,
    );
    for (let k = 0; k < threads; k++) {
      const worker = new Worker(source, {
        eval: true,
        workerData: { level: options.level ?? DEFAULT_ZSTD_LEVEL },
      });
      worker.on('message', (reply: WorkerReply) => this.settle(reply));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (this.waiting.size > 0)
          this.fail(new Error(`compression worker exited with code ${code}`));
      });
      this.workers.push(worker);
      this.queued.push(0);
    }
  }

  /**
   * The worker with the least work queued, charged `cost`. A writer waits for digests before it
   * can go on, so a digest job queued behind other workers' compression would stall it.
   */
  private pick(cost: number): number {
    let best = 0;
    for (let k = 1; k < this.queued.length; k++) if (this.queued[k]! < this.queued[best]!) best = k;
    this.queued[best]! += cost;
    return best;
  }

  /** A frame buffer of `frameBytes` bytes, recycled when possible. Its contents are undefined. */
  acquire(): Uint8Array {
    const buffer = this.freeFrames.pop();
    return buffer === undefined ? new Uint8Array(this.frameBytes) : new Uint8Array(buffer);
  }

  private recycle(list: ArrayBuffer[], buffer: ArrayBuffer): void {
    if (list.length < MAX_FREE_BUFFERS) list.push(buffer);
  }

  private settle(reply: WorkerReply): void {
    const w = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    if (w !== undefined) this.queued[w.worker]! -= w.cost;
    w?.settle(reply);
  }

  private frameResult({ method, storedLength, raw, out, digests }: WorkerReply): CompressedFrame {
    const zstd = method === 1;
    return {
      method: zstd ? METHOD_ZSTD : METHOD_RAW,
      stored: new Uint8Array(zstd ? out! : raw, 0, storedLength),
      digests: digests === null ? null : new Uint8Array(digests),
      release: () => {
        if (raw.byteLength === this.frameBytes) this.recycle(this.freeFrames, raw);
        if (out !== null) this.recycle(this.freeOutputs, out);
      },
    };
  }

  /** Whether `digestBlocks` runs on workers (else the caller is better off digesting itself). */
  get digestsOnWorkers(): boolean {
    return this.workers.length > 0;
  }

  /**
   * Digest every block of the first `length` bytes of `buffer` on a worker. The buffer travels
   * to the worker and back: use the returned view of it, not `buffer`, afterwards.
   */
  digestBlocks(
    buffer: Uint8Array,
    length: number,
    blockSize: number,
  ): Promise<{ buffer: Uint8Array; digests: Uint8Array }> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.workers.length === 0 || buffer.byteOffset !== 0 || blockSize <= 0)
      throw new Error('digestBlocks needs workers and a whole buffer');
    const id = this.nextId++;
    // SHA-256 runs about 3 times as fast as zstd -3 (SHA-NI): a digest job costs its bytes.
    const k = this.pick(length);
    const worker = this.workers[k]!;
    const whole = buffer.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, {
        settle: ({ raw, digests }) =>
          resolve({ buffer: new Uint8Array(raw), digests: new Uint8Array(digests!) }),
        reject,
        worker: k,
        cost: length,
      });
      worker.postMessage({ id, raw: whole, length, out: null, blockSize, compress: false }, [
        whole,
      ]);
    });
  }

  private fail(error: unknown): void {
    this.failure = error;
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }

  /**
   * Compress the first `length` bytes of `frame` (a buffer from `acquire`), and digest its
   * blocks when `digestBlockSize` > 0. The pool owns `frame` until the result's `release()`.
   */
  compress(frame: Uint8Array, length: number, digestBlockSize = 0): Promise<CompressedFrame> {
    const raw = frame.subarray(0, length);
    if (this.local !== null) {
      let digests: Uint8Array | null = null;
      if (digestBlockSize > 0) {
        digests = new Uint8Array((length / digestBlockSize) * DIGEST_LENGTH);
        for (let at = 0, k = 0; at < length; at += digestBlockSize, k += DIGEST_LENGTH)
          blockDigestInto(raw.subarray(at, at + digestBlockSize), digests, k);
      }
      const { method, stored } = this.local.compress(raw);
      const buffer = frame.buffer as ArrayBuffer;
      return Promise.resolve({
        method,
        stored,
        digests,
        release: () => {
          if (frame.byteOffset === 0 && buffer.byteLength === this.frameBytes)
            this.recycle(this.freeFrames, buffer);
        },
      });
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    const cost = 3 * length + (digestBlockSize > 0 ? length : 0);
    const k = this.pick(cost);
    const worker = this.workers[k]!;
    // Transfer moves whole ArrayBuffers: a view of part of one is copied into its own first.
    const owned =
      frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : raw.slice();
    const out = this.freeOutputs.pop() ?? null;
    const transfer = [owned.buffer as ArrayBuffer];
    if (out !== null) transfer.push(out);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, {
        settle: (reply) => resolve(this.frameResult(reply)),
        reject,
        worker: k,
        cost,
      });
      worker.postMessage(
        { id, raw: owned.buffer, length, out, blockSize: digestBlockSize, compress: true },
        transfer,
      );
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
