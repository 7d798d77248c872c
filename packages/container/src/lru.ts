/**
 * A small LRU of byte buffers bounded by their total size (metadata tables, decompressed
 * clusters). Concurrent loads of one key share a single promise, so a burst of reads touching the
 * same L2 table reads it once.
 */
export class ByteLru {
  private readonly entries = new Map<number, Uint8Array>();
  private readonly pending = new Map<number, Promise<Uint8Array>>();
  private bytes = 0;

  constructor(readonly budget: number) {}

  get size(): number {
    return this.bytes;
  }

  async get(key: number, load: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const promise = load().then(
      (value) => {
        this.pending.delete(key);
        this.insert(key, value);
        return value;
      },
      (error: unknown) => {
        this.pending.delete(key);
        throw error;
      },
    );
    this.pending.set(key, promise);
    return promise;
  }

  private insert(key: number, value: Uint8Array): void {
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.bytes -= old.length;
      this.entries.delete(key);
    }
    if (value.length > this.budget) return;
    this.entries.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(k);
      this.bytes -= v.length;
    }
  }
}
