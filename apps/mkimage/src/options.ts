// Validators for `key=value` options: a filesystem builder lists its options with these, the
// parser reports the returned message at the value's line and column.
import { parseSize } from './size.js';

/** Returns an error message for a bad value, undefined for a good one. */
export type OptionCheck = (value: string) => string | undefined;

/** An option's validator, or null for a bare flag (`bootable`). */
export type OptionSpec = OptionCheck | null;

export const intIn =
  (min: number, max: number, what: string): OptionCheck =>
  (v) => {
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    return n >= min && n <= max ? undefined : `${what} must be an integer from ${min} to ${max}`;
  };

const fmt = (n: number): string =>
  n >= 2 ** 20 ? `${n / 2 ** 20}M` : n >= 1024 ? `${n / 1024}K` : String(n);

export const sizeIn =
  (choices: number[], what: string): OptionCheck =>
  (v) => {
    const n = parseSize(v);
    return n !== null && choices.includes(n)
      ? undefined
      : `${what} must be one of ${choices.map(fmt).join(', ')}`;
  };

export const oneOf =
  (choices: string[], message: string): OptionCheck =>
  (v) =>
    choices.includes(v) ? undefined : message;

export const textMax =
  (max: number, what: string): OptionCheck =>
  (v) =>
    v.length === 0 || Buffer.byteLength(v) > max ? `${what} must be 1 to ${max} bytes` : undefined;

export const nonEmpty: OptionCheck = (v) => (v === '' ? 'value must not be empty' : undefined);

export const uuidCheck: OptionCheck = (v) =>
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)
    ? undefined
    : 'uuid must look like 01234567-89ab-cdef-0123-456789abcdef';

/** Powers of two from `from` to `to` inclusive. */
export const pow2 = (from: number, to: number): number[] => {
  const out: number[] = [];
  for (let n = from; n <= to; n *= 2) out.push(n);
  return out;
};
