import { FieldReader } from '@diskube/core';
import type { NtfsReason } from './reasons.js';

/** One run of a non-resident attribute: `length` clusters from `vcn` on, at `lcn` (−1 = sparse). */
export interface Run {
  vcn: number;
  lcn: number;
  length: number;
}

/** `lcn` of a sparse run: no clusters are allocated, the data reads as zeros. */
export const SPARSE = -1;

/**
 * Decode a runlist ("mapping pairs") covering `[lowestVcn, highestVcn]`.
 *
 * Each run starts with a header byte: the low nibble is the size of the run length field, the
 * high nibble the size of the LCN delta field (0 = sparse run). The delta is signed and relative
 * to the previous run's LCN. A 0x00 header ends the list.
 *
 * Every run must lie inside the volume (`lcn + length ≤ clusterCount`) and the lengths must add
 * up to exactly `highestVcn + 1 − lowestVcn`. The number of runs is bounded by the input length
 * (each run takes at least two bytes).
 *
 * Sources: ntfs-3g libntfs-3g/runlist.c (ntfs_mapping_pairs_decompress); libyal libfsntfs
 * "Data runs"; Linux fs/ntfs/runlist.c.
 */
export function decodeRunlist(
  bytes: Uint8Array,
  lowestVcn: number,
  highestVcn: number,
  clusterCount: number,
  structure: string,
  at: number,
): Run[] {
  const runs: Run[] = [];
  let pos = 0;
  let vcn = lowestVcn;
  let lcn = 0n;
  const f = new FieldReader<NtfsReason>(bytes, structure, at);
  for (;;) {
    if (pos >= bytes.length)
      throw f.corrupt('runlist has no terminating zero byte', pos, 'bad-runlist');
    const header = f.u8(pos);
    if (header === 0) break;
    const lengthSize = header & 0x0f;
    const offsetSize = header >> 4;
    if (lengthSize === 0 || lengthSize > 8 || offsetSize > 8) {
      throw f.corrupt(
        `runlist header byte 0x${header.toString(16)} is invalid`,
        pos,
        'bad-runlist',
      );
    }
    if (pos + 1 + lengthSize + offsetSize > bytes.length)
      throw f.corrupt('run runs past the attribute', pos, 'bad-runlist');
    const length = f.intLeBig(pos + 1, lengthSize);
    if (length <= 0n || length > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw f.corrupt(`run length ${length} is invalid`, pos, 'bad-runlist');
    }
    const n = Number(length);
    if (vcn + n > Math.max(highestVcn + 1, lowestVcn + 1))
      throw f.corrupt('runs extend past highest_vcn', pos, 'bad-runlist');
    if (offsetSize === 0) {
      runs.push({ vcn, lcn: SPARSE, length: n });
    } else {
      lcn += f.intLeBig(pos + 1 + lengthSize, offsetSize);
      if (lcn < 0n || lcn + length > BigInt(clusterCount)) {
        throw f.corrupt(
          `run at LCN ${lcn} (+${length}) lies outside the volume of ${clusterCount} clusters`,
          pos,
          'run-outside-volume',
        );
      }
      runs.push({ vcn, lcn: Number(lcn), length: n });
    }
    vcn += n;
    pos += 1 + lengthSize + offsetSize;
  }
  // An attribute without clusters may record highest_vcn as 0 instead of −1 (ntfs-3g accepts it).
  if (vcn !== highestVcn + 1 && !(runs.length === 0 && highestVcn === lowestVcn)) {
    throw f.corrupt(
      `runs cover VCNs ${lowestVcn}..${vcn - 1}, expected up to ${highestVcn}`,
      0,
      'bad-runlist',
    );
  }
  return runs;
}

/** The run holding `vcn`, by binary search over runs sorted by VCN, or undefined. */
export function findRun(runs: readonly Run[], vcn: number): Run | undefined {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid]!;
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return r;
  }
  return undefined;
}
