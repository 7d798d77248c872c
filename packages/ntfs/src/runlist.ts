import { CorruptError } from '@diskube/core';

/** One run of a non-resident attribute: `length` clusters from `vcn` on, at `lcn` (−1 = sparse). */
export interface Run {
  vcn: number;
  lcn: number;
  length: number;
}

/** `lcn` of a sparse run: no clusters are allocated, the data reads as zeros. */
export const SPARSE = -1;

function readLe(bytes: Uint8Array, pos: number, size: number, signed: boolean): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]!);
  if (signed && size > 0 && (bytes[pos + size - 1]! & 0x80) !== 0) v -= 1n << BigInt(size * 8);
  return v;
}

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
  const fail = (message: string, reason: string, where = pos): never => {
    throw new CorruptError(message, { structure, offset: at + where, reason });
  };
  for (;;) {
    if (pos >= bytes.length) fail('runlist has no terminating zero byte', 'bad-runlist');
    const header = bytes[pos]!;
    if (header === 0) break;
    const lengthSize = header & 0x0f;
    const offsetSize = header >> 4;
    if (lengthSize === 0 || lengthSize > 8 || offsetSize > 8) {
      fail(`runlist header byte 0x${header.toString(16)} is invalid`, 'bad-runlist');
    }
    if (pos + 1 + lengthSize + offsetSize > bytes.length)
      fail('run runs past the attribute', 'bad-runlist');
    const length = readLe(bytes, pos + 1, lengthSize, true);
    if (length <= 0n || length > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail(`run length ${length} is invalid`, 'bad-runlist');
    }
    const n = Number(length);
    if (vcn + n > Math.max(highestVcn + 1, lowestVcn + 1))
      fail('runs extend past highest_vcn', 'bad-runlist');
    if (offsetSize === 0) {
      runs.push({ vcn, lcn: SPARSE, length: n });
    } else {
      lcn += readLe(bytes, pos + 1 + lengthSize, offsetSize, true);
      if (lcn < 0n || lcn + length > BigInt(clusterCount)) {
        fail(
          `run at LCN ${lcn} (+${length}) lies outside the volume of ${clusterCount} clusters`,
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
    fail(
      `runs cover VCNs ${lowestVcn}..${vcn - 1}, expected up to ${highestVcn}`,
      'bad-runlist',
      0,
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
