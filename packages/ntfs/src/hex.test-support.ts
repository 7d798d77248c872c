/** Test-only helpers for building structures from inline hex. Not exported from the package. */
import type { ErrorCode } from '@diskube/core';
import { applyFixups } from './mft-record.js';
import type { NtfsReason } from './reasons.js';
import type { Run } from './runlist.js';

/**
 * `CODE/reason` as the corruption tests compare it; typing the expected value with it
 * (`toBe<Outcome>(…)`) makes every expected reason one of `NTFS_REASONS`.
 */
export type Outcome = `${ErrorCode}/${NtfsReason}`;

/** Bytes from whitespace-separated hex ("eb52 904e …"); `size` pads with zeros. */
export function hex(text: string, size?: number): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) throw new Error(`bad hex: ${text}`);
  const out = new Uint8Array(size ?? clean.length / 2);
  for (let i = 0; i < clean.length / 2; i++)
    out[i] = Number.parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * The inverse of `applyFixups`: save the last two bytes of every 512-byte stride into the update
 * sequence array and replace them with the update sequence number, as NTFS does before a write.
 * The record must already hold usa_ofs/usa_count at 4/6 and the USN at usa_ofs.
 */
export function protect(record: Uint8Array): Uint8Array {
  const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const usaOfs = v.getUint16(4, true);
  const usaCount = v.getUint16(6, true);
  const usn = v.getUint16(usaOfs, true);
  for (let i = 1; i < usaCount; i++) {
    const end = i * 512 - 2;
    v.setUint16(usaOfs + i * 2, v.getUint16(end, true), true);
    v.setUint16(end, usn, true);
  }
  return record;
}

/**
 * Edit a protected record stored contiguously at `offset` of `image`: undo the fixups, let `edit`
 * change the plain record, then protect it again and write it back.
 */
export function patchProtected(
  image: Uint8Array,
  offset: number,
  size: number,
  edit: (record: Uint8Array, view: DataView) => void,
): void {
  const record = image.slice(offset, offset + size);
  applyFixups(record, 'test record', offset);
  edit(record, new DataView(record.buffer));
  image.set(protect(record), offset);
}

/**
 * A 4 KiB $LogFile restart page (RSTR or CHKD), protected: usa_ofs 0x1e, usa_count 9, system
 * and log page size 4096, restart area at 0x30 with current_lsn, log_clients 1,
 * client_free_list 0xffff, client_in_use_list and flags.
 */
export function restartPage(opts: {
  magic?: string;
  lsn: number;
  inUse: number;
  flags: number;
}): Uint8Array {
  const magic = [...(opts.magic ?? 'RSTR')].map((c) => c.charCodeAt(0).toString(16)).join('');
  const page = hex(
    `${magic} 1e00 0900 0000000000000000 00100000 00100000 3000 0100 0100 0100`,
    4096,
  );
  const v = new DataView(page.buffer);
  v.setBigUint64(0x30, BigInt(opts.lsn), true);
  v.setUint16(0x38, 1, true);
  v.setUint16(0x3a, 0xffff, true);
  v.setUint16(0x3c, opts.inUse, true);
  v.setUint16(0x3e, opts.flags, true);
  return protect(page);
}

/** Minimal little-endian signed encoding of `value` (at least one byte). */
export function signedBytes(value: number): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  for (;;) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) return out;
  }
}

/** Encode runs as mapping pairs (the inverse of decodeRunlist), with the terminating zero. */
export function encodeRuns(runs: Run[]): number[] {
  const out: number[] = [];
  let prev = 0;
  for (const r of runs) {
    const length = signedBytes(r.length);
    const delta = r.lcn < 0 ? [] : signedBytes(r.lcn - prev);
    if (r.lcn >= 0) prev = r.lcn;
    out.push((delta.length << 4) | length.length, ...length, ...delta);
  }
  out.push(0);
  return out;
}

export const align8 = (n: number) => (n + 7) & ~7;

/** Runs restricted to VCNs [from, to). */
export function slice(runs: Run[], from: number, to: number): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    const s = Math.max(r.vcn, from);
    const e = Math.min(r.vcn + r.length, to);
    if (s < e) out.push({ vcn: s, lcn: r.lcn + (s - r.vcn), length: e - s });
  }
  return out;
}

export interface RawAttr {
  type: number;
  instance: number;
  bytes: Uint8Array;
}

export function attributesOf(record: Uint8Array): RawAttr[] {
  const v = new DataView(record.buffer, record.byteOffset);
  const out: RawAttr[] = [];
  for (
    let pos = v.getUint16(0x14, true);
    v.getUint32(pos, true) !== 0xffffffff;
    pos += v.getUint32(pos + 4, true)
  ) {
    out.push({
      type: v.getUint32(pos, true),
      instance: v.getUint16(pos + 0x0e, true),
      bytes: record.slice(pos, pos + v.getUint32(pos + 4, true)),
    });
  }
  return out;
}

/** A non-resident $DATA extent record for VCNs [low, high] with the given runs. */
export function dataExtent(
  template: Uint8Array,
  low: number,
  high: number,
  runs: Run[],
  instance: number,
  sizes: boolean,
): Uint8Array {
  const pairs = encodeRuns(runs);
  const length = align8(0x40 + pairs.length);
  const a = new Uint8Array(length);
  a.set(template.subarray(0, 0x40));
  const v = new DataView(a.buffer);
  v.setUint32(4, length, true);
  v.setUint16(0x0e, instance, true);
  v.setBigInt64(0x10, BigInt(low), true);
  v.setBigInt64(0x18, BigInt(high), true);
  v.setUint16(0x20, 0x40, true);
  if (!sizes) for (const off of [0x28, 0x30, 0x38]) v.setBigInt64(off, 0n, true);
  a.set(pairs, 0x40);
  return a;
}

export function writeRecord(header: Uint8Array, attrs: Uint8Array[], size: number): Uint8Array {
  const r = new Uint8Array(size);
  r.set(header.subarray(0, 0x38));
  let pos = 0x38;
  for (const a of attrs) {
    r.set(a, pos);
    pos += a.length;
  }
  const v = new DataView(r.buffer);
  v.setUint32(pos, 0xffffffff, true);
  v.setUint16(0x14, 0x38, true);
  v.setUint32(0x18, pos + 8, true);
  return protect(r);
}
