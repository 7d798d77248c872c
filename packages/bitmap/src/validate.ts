// Argument checks shared by every Bitmap method. This package has no dependencies, so it throws
// the built-in TypeError (wrong type) and RangeError (not an integer, or out of range), each with
// a message naming the method and the offending value.

/** Largest supported length in bits: 2^32 words of 32 bits, the typed-array limit of Node 20. */
export const MAX_LENGTH = 2 ** 37;

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `${value}n (a bigint)`;
  if (value === null) return 'null';
  return `a ${typeof value}`;
}

/** Throws unless `value` is an integer number ≥ 0 and ≤ `max`. */
export function checkCount(where: string, name: string, value: unknown, max: number): number {
  if (typeof value !== 'number') {
    throw new TypeError(`${where}: ${name} must be a number, got ${describe(value)}`);
  }
  if (!Number.isInteger(value)) {
    throw new RangeError(`${where}: ${name} must be an integer, got ${describe(value)}`);
  }
  if (value < 0 || value > max) {
    throw new RangeError(`${where}: ${name} ${value} is out of range [0, ${max}]`);
  }
  return value;
}

/** Throws unless `index` is an integer in `[0, length)`. */
export function checkIndex(where: string, index: unknown, length: number): number {
  // Fast path first: this guards get/set, which callers run in tight loops.
  if (typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < length) {
    return index;
  }
  if (typeof index !== 'number') {
    throw new TypeError(`${where}: index must be a number, got ${describe(index)}`);
  }
  if (!Number.isInteger(index)) {
    throw new RangeError(`${where}: index must be an integer, got ${describe(index)}`);
  }
  throw new RangeError(`${where}: index ${index} is out of range [0, ${length})`);
}

/** Throws unless `[start, start + count)` is a range of integers inside `[0, length]`. */
export function checkRange(where: string, start: unknown, count: unknown, length: number): void {
  const s = checkCount(where, 'start', start, length);
  const c = checkCount(where, 'length', count, length);
  if (s + c > length) {
    throw new RangeError(
      `${where}: range [${s}, ${s + c}) runs past the end of the bitmap (length ${length})`,
    );
  }
}

/** Throws unless `0 ≤ start ≤ end ≤ length`, all integers. */
export function checkWindow(where: string, start: unknown, end: unknown, length: number): void {
  const s = checkCount(where, 'start', start, length);
  const e = checkCount(where, 'end', end, length);
  if (s > e) throw new RangeError(`${where}: start ${s} is after end ${e}`);
}

/** Throws unless `factor` is a positive integer. */
export function checkFactor(where: string, factor: unknown): number {
  const f = checkCount(where, 'factor', factor, Number.MAX_SAFE_INTEGER);
  if (f === 0) throw new RangeError(`${where}: factor must be a positive integer, got 0`);
  return f;
}
