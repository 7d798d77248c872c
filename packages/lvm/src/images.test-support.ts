// Test support (not exported): real LVM2 PVs built by the mkimage DSL (pvcreate + vgcfgrestore
// on a loop device), read into memory, and a way to give such a PV different metadata text with
// valid checksums, for layouts LVM cannot write without device-mapper (thin, raid, snapshots)
// and for corruptions past the checksums.
import { readFile } from 'node:fs/promises';
import { memorySource } from '@diskube/core';
import { buildImage, type ManifestPartition } from '@diskube/mkimage';
import { UBUNTU_LVM_SPEC } from '@diskube/mkimage/testing';
import { lvmCrc } from './crc.js';

export interface PvImage {
  image: string;
  partition: ManifestPartition;
  /** The PV's bytes (the partition), a private copy. */
  bytes: Uint8Array;
}

export async function ubuntuPv(): Promise<PvImage> {
  const { image, manifest } = await buildImage(UBUNTU_LVM_SPEC);
  const partition = manifest.partitions.find((p) => p.fs === 'lvm')!;
  const disk = await readFile(image);
  const bytes = new Uint8Array(disk.subarray(partition.offset, partition.offset + partition.size));
  return { image, partition, bytes };
}

export const source = (bytes: Uint8Array) => memorySource(bytes);

const le32 = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const set32 = (b: Uint8Array, at: number, v: number) =>
  new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
const le64 = (b: Uint8Array, at: number) =>
  Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));
const set64 = (b: Uint8Array, at: number, v: number) =>
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt(v), true);

/** Where the first metadata area is (mkimage's PVs: one area at 4096) and its text. */
export function metadataOf(pv: Uint8Array): { mda: number; textAt: number; text: string } {
  const mda = 4096;
  const textAt = mda + le64(pv, mda + 0x28);
  const size = le64(pv, mda + 0x30);
  return {
    mda,
    textAt,
    text: new TextDecoder().decode(pv.subarray(textAt, textAt + size)).replace(/\0+$/, ''),
  };
}

/** A copy of `pv` whose committed metadata is `text` (written where the old text was, checksums fixed). */
export function withMetadata(pv: Uint8Array, text: string): Uint8Array {
  const out = pv.slice();
  const { mda, textAt } = metadataOf(out);
  const bytes = new TextEncoder().encode(text);
  out.set(bytes, textAt);
  set64(out, mda + 0x30, bytes.length);
  set32(out, mda + 0x38, lvmCrc(bytes));
  fixMdaChecksum(out, mda);
  return out;
}

export function fixMdaChecksum(pv: Uint8Array, mda = 4096): void {
  set32(pv, mda, lvmCrc(pv.subarray(mda + 4, mda + 512)));
}

/** Re-computes the label sector's checksum (label in sector 1). */
export function fixLabelChecksum(pv: Uint8Array, sector = 1): void {
  const at = sector * 512;
  set32(pv, at + 0x10, lvmCrc(pv.subarray(at + 0x14, at + 512)));
}

export { le32 };
