// Test support: minimal on-disk structures built field by field (big-endian, as on disk), for the
// per-structure tests. Offsets are those of FORMAT.md.
import { hasErrorCode } from '@diskube/core';
import { xfsChecksum } from './checksum.js';

export const UUID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);

export function put32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, false);
}
export function put16(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint16(at, v, false);
}
export function put64(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt(v), false);
}
/** Store the v5 CRC of `b` (little-endian at `crcAt`). */
export function sealCrc(b: Uint8Array, crcAt: number): Uint8Array {
  const crc = xfsChecksum(b, crcAt);
  new DataView(b.buffer, b.byteOffset).setUint32(crcAt, crc, true);
  return b;
}

export interface SbFields {
  version?: 4 | 5;
  blocklog?: number;
  sectlog?: number;
  agblocks?: number;
  agcount?: number;
  dblocks?: number;
  logstart?: number;
  logblocks?: number;
  incompat?: number;
  roCompat?: number;
}

/** A 512-byte superblock sector: 4 AGs of 4096 blocks of 4 KiB by default, v5, CRC sealed. */
export function superblockSector(f: SbFields = {}): Uint8Array {
  const version = f.version ?? 5;
  const blocklog = f.blocklog ?? 12;
  const sectlog = f.sectlog ?? 9;
  const agblocks = f.agblocks ?? 4096;
  const agcount = f.agcount ?? 4;
  const b = new Uint8Array(512);
  put32(b, 0x00, 0x58465342);
  put32(b, 0x04, 2 ** blocklog);
  put64(b, 0x08, f.dblocks ?? agblocks * agcount);
  b.set(UUID, 0x20);
  put64(b, 0x30, f.logstart ?? 8198);
  put32(b, 0x54, agblocks);
  put32(b, 0x58, agcount);
  put32(b, 0x60, f.logblocks ?? 1368);
  put16(b, 0x64, version === 5 ? 0xb4a5 : 0xb4a4);
  put16(b, 0x66, 2 ** sectlog);
  put16(b, 0x68, 512);
  b.set([0x64, 0x61, 0x74, 0x61], 0x6c); // label "data"
  b[0x78] = blocklog;
  b[0x79] = sectlog;
  b[0x7a] = 9;
  b[0x7c] = Math.ceil(Math.log2(agblocks));
  put32(b, 0xc8, version === 5 ? 0x18a : 0x8a);
  put32(b, 0xcc, version === 5 ? 0x18a : 0x8a);
  if (version === 5) {
    put32(b, 0xd4, f.roCompat ?? 0xd);
    put32(b, 0xd8, f.incompat ?? 0xb);
    sealCrc(b, 0xe0);
  }
  return b;
}

/** The `reason` of the CORRUPT or UNSUPPORTED error `f` throws, or undefined if it returns. */
export function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (hasErrorCode(e, 'CORRUPT') || hasErrorCode(e, 'UNSUPPORTED')) return e.reason;
    throw e;
  }
  return undefined;
}
