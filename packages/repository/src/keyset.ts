import type { ObjectInfo } from './backend.js';
import type { Repository } from './repository.js';

// Verify, prune and stats need an exact set of every chunk and patch key a repository holds or
// its snapshots reference. As JavaScript strings in a Map that costs about 400 bytes per key
// (1.8 GiB for verify at 1.1 million chunks); here a key is its binary id(s) in an
// open-addressing table, about 80 bytes per key. Above `limit` keys the id space is split into
// ranges of the ids' first byte, one pass each, so memory stays bounded whatever the
// repository's size (up to 256 passes) and work grows with it instead.

/** The object is listed (it exists); its size is known. */
export const KEY_PRESENT = 1;
/** A snapshot references it. */
export const KEY_REFERENCED = 2;
/** A snapshot references it as a chunk (the top of a patch chain, or a whole chunk). */
export const KEY_TOP = 4;
/** Its chain was read (verify --read-data). */
export const KEY_READ = 8;
const OCCUPIED = 128;

/** No entry: the key lies outside the pass's range, or is absent. */
export const NO_KEY = -1;

/** Keys allowed in one pass before its range is halved (about 80 MiB at its fullest). */
export const DEFAULT_KEYS_PER_PASS = 1 << 20;

const MAX_LOAD = 0.75;

/** An open-addressing table of fixed-width binary keys (SHA-256 ids: already uniform). */
class Table {
  keys: Uint8Array;
  flags: Uint8Array;
  sizes: Uint32Array;
  marks: Int32Array;
  size = 0;
  private mask: number;

  constructor(readonly width: number) {
    this.keys = new Uint8Array(0);
    this.flags = new Uint8Array(0);
    this.sizes = new Uint32Array(0);
    this.marks = new Int32Array(0);
    this.mask = 0;
    this.allocate(1024);
  }

  private allocate(capacity: number): void {
    this.keys = new Uint8Array(capacity * this.width);
    this.flags = new Uint8Array(capacity);
    this.sizes = new Uint32Array(capacity);
    this.marks = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.size = 0;
  }

  clear(): void {
    this.flags.fill(0);
    this.size = 0;
  }

  /** The slot of the key `src[at…at+width)`, added when `insert`; NO_KEY when absent. */
  find(src: Uint8Array, at: number, insert: boolean): number {
    const w = this.width;
    // Bytes 1–4 of the id: byte 0 is the same for every key of a narrow pass.
    let slot =
      (src[at + 1]! | (src[at + 2]! << 8) | (src[at + 3]! << 16) | (src[at + 4]! << 24)) &
      this.mask;
    for (;;) {
      if (this.flags[slot] === 0) break;
      const base = slot * w;
      let same = true;
      for (let i = 0; i < w; i++) {
        if (this.keys[base + i] !== src[at + i]) {
          same = false;
          break;
        }
      }
      if (same) return slot;
      slot = (slot + 1) & this.mask;
    }
    if (!insert) return NO_KEY;
    if (this.size + 1 > (this.mask + 1) * MAX_LOAD) {
      this.grow();
      return this.find(src, at, true);
    }
    this.keys.set(src.subarray(at, at + w), slot * w);
    this.flags[slot] = OCCUPIED;
    this.sizes[slot] = 0;
    this.marks[slot] = 0;
    this.size++;
    return slot;
  }

  private grow(): void {
    const { keys, flags, sizes, marks } = this;
    this.allocate((this.mask + 1) * 2);
    for (let s = 0; s < flags.length; s++) {
      if (flags[s] === 0) continue;
      const to = this.find(keys, s * this.width, true);
      this.flags[to] = flags[s]!;
      this.sizes[to] = sizes[s]!;
      this.marks[to] = marks[s]!;
    }
  }
}

const HEX_VALUE = (() => {
  const v = new Int8Array(128).fill(-1);
  for (let i = 0; i < 16; i++) {
    v['0123456789abcdef'.charCodeAt(i)] = i;
  }
  return v;
})();

/** Decode 64 hex digits of `text` from `from` into `out[at…at+32)`; false if they are not hex. */
function hexInto(text: string, from: number, out: Uint8Array, at: number): boolean {
  if (text.length < from + 64) return false;
  for (let i = 0; i < 32; i++) {
    const hi = HEX_VALUE[text.charCodeAt(from + 2 * i)] ?? -1;
    const lo = HEX_VALUE[text.charCodeAt(from + 2 * i + 1)] ?? -1;
    if (hi < 0 || lo < 0) return false;
    out[at + i] = (hi << 4) | lo;
  }
  return true;
}

/** Thrown inside a pass whose set outgrew its limit: the pass reruns over half the range. */
class PassOverflow extends Error {}

/**
 * The chunk and patch keys of one pass: those whose id's first byte lies in `[lo, hi)`. A
 * handle is a chunk slot (≥ 0) or a patch slot (≤ -2); NO_KEY (-1) is no entry.
 */
export class PassKeys {
  private readonly chunks = new Table(32);
  private readonly patches = new Table(64);
  private readonly scratch = new Uint8Array(64);
  lo = 0;
  hi = 256;

  constructor(private readonly limit: number) {}

  get whole(): boolean {
    return this.lo === 0 && this.hi === 256;
  }

  get size(): number {
    return this.chunks.size + this.patches.size;
  }

  /** Whether chunk id `id` (hex) falls in this pass. */
  inRange(id: string): boolean {
    const first = Number.parseInt(id.slice(0, 2), 16);
    return first >= this.lo && first < this.hi;
  }

  /** The object `id` (a whole chunk when `base` is null, else the patch of `id` over `base`). */
  ref(id: string, base: string | null, insert: boolean): number {
    if (!this.inRange(id)) return NO_KEY;
    if (!hexInto(id, 0, this.scratch, 0)) return NO_KEY;
    if (base === null) return this.found(this.chunks.find(this.scratch, 0, insert), insert, 1);
    if (!hexInto(base, 0, this.scratch, 32)) return NO_KEY;
    return this.found(this.patches.find(this.scratch, 0, insert), insert, -1);
  }

  /**
   * The object whose 32-byte id is `src[at…at+32)`: a whole chunk, or with `patch` the patch of
   * that id over the base id that follows it (`src[at+32…at+64)`, as index entries lay them out).
   */
  refBytes(src: Uint8Array, at: number, patch: boolean, insert: boolean): number {
    const first = src[at]!;
    if (first < this.lo || first >= this.hi) return NO_KEY;
    if (!patch) return this.found(this.chunks.find(src, at, insert), insert, 1);
    return this.found(this.patches.find(src, at, insert), insert, -1);
  }

  /** The object of a listed key (`chunks/ab/<id>` or `patches/ab/<id>-<base>`). */
  listed(key: string, insert: boolean): number {
    if (key.startsWith('chunks/')) {
      const id = key.slice(10);
      return id.length === 64 ? this.ref(id, null, insert) : NO_KEY;
    }
    if (key.startsWith('patches/') && key.length === 11 + 129 && key[11 + 64] === '-')
      return this.ref(key.slice(11, 75), key.slice(76), insert);
    return NO_KEY;
  }

  private found(slot: number, insert: boolean, sign: 1 | -1): number {
    if (slot === NO_KEY) return NO_KEY;
    if (insert && this.size > this.limit && this.hi - this.lo > 1) throw new PassOverflow();
    return sign === 1 ? slot : -slot - 2;
  }

  private table(handle: number): [Table, number] {
    return handle >= 0 ? [this.chunks, handle] : [this.patches, -handle - 2];
  }

  flags(handle: number): number {
    const [t, s] = this.table(handle);
    return t.flags[s]!;
  }

  setFlags(handle: number, flags: number): void {
    const [t, s] = this.table(handle);
    t.flags[s] = t.flags[s]! | flags;
  }

  storedSize(handle: number): number {
    const [t, s] = this.table(handle);
    return t.sizes[s]!;
  }

  setStoredSize(handle: number, size: number): void {
    const [t, s] = this.table(handle);
    t.sizes[s] = Math.min(size, 0xffffffff);
  }

  mark(handle: number): number {
    const [t, s] = this.table(handle);
    return t.marks[s]!;
  }

  setMark(handle: number, mark: number): void {
    const [t, s] = this.table(handle);
    t.marks[s] = mark;
  }

  /** Keys with every bit of `flags` set. */
  count(flags: number): number {
    let n = 0;
    for (const t of [this.chunks, this.patches]) {
      for (const f of t.flags) if ((f & flags) === flags && f !== 0) n++;
    }
    return n;
  }

  clear(): void {
    this.chunks.clear();
    this.patches.clear();
  }
}

/**
 * Run `pass` over ranges of the id space that cover it once, each with an empty key set: one
 * pass over everything when the keys fit in `limit`; a pass whose set outgrows `limit` is
 * rerun over half its range. Whatever a pass does after it stops adding keys (reads, deletes)
 * happens once per range. Returns the number of passes completed.
 */
export async function inPasses(
  limit: number,
  pass: (keys: PassKeys) => Promise<void>,
): Promise<number> {
  const keys = new PassKeys(limit);
  let width = 256;
  let passes = 0;
  for (let lo = 0; lo < 256; ) {
    keys.lo = lo;
    keys.hi = Math.min(256, lo + width);
    keys.clear();
    try {
      await pass(keys);
    } catch (error) {
      if (!(error instanceof PassOverflow)) throw error;
      width = Math.max(1, width / 2);
      continue;
    }
    passes++;
    lo = keys.hi;
  }
  return passes;
}

/** Prefixes of the objects chunk content lives in: whole chunks and patches. */
export const CHUNK_PREFIXES = ['chunks/', 'patches/'] as const;

/**
 * The items of several async iterables, at most `limit` of them read at once, in the order they
 * arrive. Each source has one item requested ahead, so memory stays at `limit` items (plus what
 * each source buffers). The first error ends the whole.
 */
export async function* merged<T>(
  sources: Array<() => AsyncIterable<T>>,
  limit: number,
): AsyncGenerator<T> {
  type Step = [number, IteratorResult<T>];
  const active = new Map<number, { it: AsyncIterator<T>; step: Promise<Step> }>();
  const request = (i: number, it: AsyncIterator<T>) => {
    const step = it.next().then((r): Step => [i, r]);
    step.catch(() => {}); // rejections are seen through Promise.race, or ignored once ended
    active.set(i, { it, step });
  };
  let next = 0;
  const start = () => {
    const i = next++;
    request(i, sources[i]!()[Symbol.asyncIterator]());
  };
  try {
    while (active.size < Math.max(1, limit) && next < sources.length) start();
    while (active.size > 0) {
      const [i, r] = await Promise.race([...active.values()].map((a) => a.step));
      const { it } = active.get(i)!;
      if (r.done) {
        active.delete(i);
        if (next < sources.length) start();
        continue;
      }
      request(i, it);
      yield r.value;
    }
  } finally {
    for (const { it } of active.values()) void it.return?.()?.catch(() => {});
  }
}

/**
 * The listing prefixes under `prefix` whose keys are exactly those with a first id byte in
 * [lo, hi): one per first hex digit the range covers whole, one per first byte elsewhere. So a
 * pass over half the ids lists 8 prefixes, not 128, and every key is in at most one pass.
 */
export function rangePrefixes(prefix: string, lo: number, hi: number): string[] {
  const out: string[] = [];
  for (let b = lo; b < hi; ) {
    if (b % 16 === 0 && b + 16 <= hi) {
      out.push(`${prefix}${(b >> 4).toString(16)}`);
      b += 16;
    } else {
      out.push(`${prefix}${b.toString(16).padStart(2, '0')}/`);
      b++;
    }
  }
  return out;
}

/**
 * The chunk and patch objects of the pass's range: one listing per prefix when the range is
 * everything, else one per `rangePrefixes`, `repo.concurrency` of them at once.
 */
export function listPassObjects(
  repo: Repository,
  keys: PassKeys,
  signal?: AbortSignal,
): AsyncIterable<ObjectInfo> {
  const prefixes: string[] = [];
  for (const prefix of CHUNK_PREFIXES) {
    if (keys.whole) prefixes.push(prefix);
    else prefixes.push(...rangePrefixes(prefix, keys.lo, keys.hi));
  }
  return merged(
    prefixes.map((prefix) => () => repo.backend.list(prefix, signal)),
    repo.concurrency,
  );
}
