/** Test-only helpers for building structures from inline hex. Not exported from the package. */
import { applyFixups } from './mft-record.js';

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
