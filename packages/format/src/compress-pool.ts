import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type CompressOptions, DEFAULT_ZSTD_LEVEL, FrameCompressor } from './compress.js';
import { METHOD_RAW, METHOD_ZSTD } from './frame-index.js';

// Frame compression on worker threads, so zstd runs on one core while the main thread reads
// and digests on another. Results come back in submission order. The worker is inline code
// (eval) that loads zstd-napi by absolute path: no separate bundle entry, works from source too.

/**
 * The worker's code. Eval code runs as CommonJS or as ESM depending on the nearest package.json,
 * so it uses only dynamic import(), which works in both.
 */
function workerSource(zstdUrl: string): string {
  return `
Promise.all([import('node:worker_threads'), import(${JSON.stringify(zstdUrl)})]).then(([wt, zstd]) => {
  const { parentPort, workerData } = wt;
  const Compressor = zstd.Compressor ?? zstd.default.Compressor;
  const c = new Compressor();
  c.setParameters({ compressionLevel: workerData.level, checksumFlag: false });
  parentPort.on('message', ({ id, raw }) => {
    const input = new Uint8Array(raw);
    const packed = c.compress(input);
    if (packed.length < input.length) {
      const out = new Uint8Array(packed.length);
      out.set(packed);
      parentPort.postMessage({ id, method: 1, stored: out.buffer }, [out.buffer]);
    } else {
      parentPort.postMessage({ id, method: 0, stored: raw }, [raw]);
    }
  });
});
`;
}

export interface CompressedFrame {
  method: number;
  stored: Uint8Array;
}

/** Compresses frames in order, on `threads` workers, or in this thread when `threads` is 0. */
export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (f: CompressedFrame) => void; reject: (e: unknown) => void }
  >();
  private readonly local: FrameCompressor | null;
  private nextId = 0;
  private failure: unknown = null;

  constructor(options: CompressOptions, threads: number) {
    if (options.type !== 'zstd' || threads <= 0) {
      this.local = new FrameCompressor(options);
      return;
    }
    this.local = null;
    const source = workerSource(
      pathToFileURL(createRequire(import.meta.url).resolve('zstd-napi')).href,
    );
    for (let k = 0; k < threads; k++) {
      const worker = new Worker(source, {
        eval: true,
        workerData: { level: options.level ?? DEFAULT_ZSTD_LEVEL },
      });
      worker.on(
        'message',
        ({ id, method, stored }: { id: number; method: number; stored: ArrayBuffer }) => {
          const w = this.waiting.get(id);
          this.waiting.delete(id);
          w?.resolve({
            method: method === 1 ? METHOD_ZSTD : METHOD_RAW,
            stored: new Uint8Array(stored),
          });
        },
      );
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (this.waiting.size > 0)
          this.fail(new Error(`compression worker exited with code ${code}`));
      });
      this.workers.push(worker);
    }
  }

  private fail(error: unknown): void {
    this.failure = error;
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
  }

  /** Compress `raw`; the pool takes ownership of the buffer (it is transferred to a worker). */
  compress(raw: Uint8Array): Promise<CompressedFrame> {
    if (this.local !== null) return Promise.resolve(this.local.compress(raw));
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.workers[id % this.workers.length]!;
    // Transfer needs a buffer of exactly these bytes.
    const owned =
      raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? raw : raw.slice();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, raw: owned.buffer }, [owned.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
