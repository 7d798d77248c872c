import { type BlockSource, CorruptError, checkRange, type Warning } from '@diskube/core';
import type { LvEntry, PvEntry, Segment, VolumeGroup } from './metadata.js';

// Sources: LVM2 lib/striped/striped.c and the kernel's drivers/md/dm-stripe.c (stripe_map_sector:
// chunk = offset / stripe_size; stripe = chunk % stripes; the chunk's row = chunk / stripes; the
// sector on that stripe's device is row × stripe_size + offset % stripe_size, counted from the
// stripe's first extent). A linear segment is one stripe: offsets map straight through.

/** One logical volume of the VG, as seen from this PV. */
export interface LogicalVolume {
  name: string;
  /** Bytes of the LV (its extents × the extent size). */
  size: number;
  /** The LV as the metadata describes it. */
  entry: LvEntry;
  /**
   * The LV's bytes, assembled from its segments, when every segment is linear or striped on this
   * PV and no other LV builds on it (a thin pool's data, a raid image, a snapshot origin). Null
   * when it is kept whole (`keptWhole` says why).
   */
  source: BlockSource | null;
  /** The warning (code `lv-kept-whole` or `lv-outside-disk`) when `source` is null. */
  keptWhole: Warning | null;
  /** Byte ranges `[offset, length]` of this PV holding the LV's extents, in LV order. */
  pvRanges: Array<[number, number]>;
  /** Maps byte ranges of the LV (from `source`) to byte ranges of this PV. */
  toPv(ranges: Iterable<[number, number]>): Array<[number, number]>;
}

interface Placed {
  segment: Segment;
  /** First byte of the segment in the LV. */
  start: number;
  length: number;
  /** Byte offset on this PV of each stripe's first extent. */
  bases: number[];
}

function place(lv: LvEntry, vg: VolumeGroup, pv: PvEntry): Placed[] {
  return lv.segments.map((segment) => ({
    segment,
    start: segment.startExtent * vg.extentSize,
    length: segment.extentCount * vg.extentSize,
    bases: segment.stripes.map((s) => pv.peStart + s.extent * vg.extentSize),
  }));
}

/**
 * The PV range holding LV bytes `[at, …)` of one segment (`at` relative to the segment),
 * as long as it stays contiguous: to the end of the stripe chunk, or of a linear segment.
 */
function mapPoint(p: Placed, at: number): [number, number] {
  const n = p.bases.length;
  if (n === 1) return [p.bases[0]! + at, p.length - at];
  const ss = p.segment.stripeSize;
  const chunk = Math.floor(at / ss);
  const within = at - chunk * ss;
  return [p.bases[chunk % n]! + Math.floor(chunk / n) * ss + within, ss - within];
}

/** Segment-relative `[a, b)` of a striped or linear segment onto the PV. */
function mapSegmentRange(p: Placed, a: number, b: number, out: Array<[number, number]>): void {
  const n = p.bases.length;
  const ss = p.segment.stripeSize;
  const push = (offset: number, length: number) => {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === offset) last[1] += length;
    else out.push([offset, length]);
  };
  let at = a;
  // Chunk by chunk up to a row boundary, then whole rows (one range per stripe), then the rest.
  const row = n > 1 ? ss * n : 0;
  while (at < b && (n === 1 || at % row !== 0 || b - at < row)) {
    const [offset, length] = mapPoint(p, at);
    const take = Math.min(length, b - at);
    push(offset, take);
    at += take;
    if (n === 1) return;
  }
  if (at >= b) return;
  const rows = Math.floor((b - at) / row);
  const firstRow = at / row;
  for (let s = 0; s < n; s++) push(p.bases[s]! + firstRow * ss, rows * ss);
  at += rows * row;
  while (at < b) {
    const [offset, length] = mapPoint(p, at);
    const take = Math.min(length, b - at);
    push(offset, take);
    at += take;
  }
}

function findSegment(placed: Placed[], at: number): number {
  let lo = 0;
  let hi = placed.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (placed[mid]!.start <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Maps LV ranges onto the PV through the placed segments. */
function toPv(placed: Placed[], ranges: Iterable<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [offset, length] of ranges) {
    let at = offset;
    const end = offset + length;
    let i = findSegment(placed, at);
    while (at < end && i < placed.length) {
      const p = placed[i]!;
      const b = Math.min(end, p.start + p.length);
      if (b > at) mapSegmentRange(p, at - p.start, b - p.start, out);
      at = b;
      i++;
    }
  }
  return out;
}

function lvSource(
  pvSource: BlockSource,
  placed: Placed[],
  size: number,
  name: string,
): BlockSource {
  return {
    size,
    async read(offset, dst) {
      checkRange(size, offset, dst.length, `logical volume ${name}`);
      let done = 0;
      let i = findSegment(placed, offset);
      while (done < dst.length) {
        const at = offset + done;
        while (placed[i]!.start + placed[i]!.length <= at) i++;
        const p = placed[i]!;
        const [pvOffset, run] = mapPoint(p, at - p.start);
        const take = Math.min(run, dst.length - done);
        await pvSource.read(pvOffset, dst.subarray(done, done + take));
        done += take;
      }
    },
  };
}

/** LVs other LVs build on (by name in a non-striped segment), with the LV naming them first. */
function builtUpon(vg: VolumeGroup): Map<string, string> {
  const names = new Set(vg.logicalVolumes.map((lv) => lv.name));
  const owner = new Map<string, string>();
  const special = vg.logicalVolumes.filter((lv) => lv.segments.some((s) => s.type !== 'striped'));
  for (const lv of special) owner.set(lv.name, lv.name);
  // A fixed point: a cache pool's data LV is itself built upon, and so on; each pass adds at
  // least one name or stops, so there are at most as many passes as LVs.
  for (let changed = true; changed; ) {
    changed = false;
    for (const lv of vg.logicalVolumes) {
      const top = owner.get(lv.name);
      if (top === undefined) continue;
      for (const segment of lv.segments) {
        for (const ref of segment.references) {
          if (names.has(ref) && !owner.has(ref)) {
            owner.set(ref, top);
            changed = true;
          }
        }
      }
    }
  }
  return owner;
}

/**
 * The LVs of `vg` as seen from `pv` (the PV whose bytes `pvSource` holds): a source for each
 * LV that can be mapped exactly, otherwise its extents on this PV with the warning saying why.
 * Stripe areas on this PV that overlap are CORRUPT.
 */
export function logicalVolumes(
  pvSource: BlockSource,
  vg: VolumeGroup,
  pv: PvEntry,
): LogicalVolume[] {
  const owner = builtUpon(vg);
  const areas: Array<[number, number, string]> = [];
  const volumes = vg.logicalVolumes.map((entry): LogicalVolume => {
    const placed = place(entry, vg, pv);
    const size = entry.extentCount * vg.extentSize;
    const pvRanges: Array<[number, number]> = [];
    let outside = false;
    for (const p of placed) {
      const areaLength = p.length / Math.max(1, p.bases.length);
      p.segment.stripes.forEach((stripe, s) => {
        if (stripe.pv !== pv.name) {
          outside = true;
          return;
        }
        pvRanges.push([p.bases[s]!, areaLength]);
        areas.push([p.bases[s]!, areaLength, entry.name]);
      });
    }
    let keptWhole: Warning | null = null;
    const top = owner.get(entry.name);
    if (top !== undefined) {
      const types = [
        ...new Set(vg.logicalVolumes.find((lv) => lv.name === top)!.segments.map((s) => s.type)),
      ];
      keptWhole = {
        code: 'lv-kept-whole',
        message:
          top === entry.name
            ? `LV ${entry.name} has ${types.join(', ')} segments, not mapped exactly: kept whole`
            : `LV ${entry.name} is part of LV ${top} (${types.join(', ')}), not mapped exactly: kept whole`,
      };
    } else if (outside) {
      keptWhole = {
        code: 'lv-outside-disk',
        message: `LV ${entry.name} has extents on a PV outside this disk: its extents here are kept whole`,
      };
    }
    const mapped = keptWhole === null;
    return {
      name: entry.name,
      size,
      entry,
      source: mapped ? lvSource(pvSource, placed, size, entry.name) : null,
      keptWhole,
      pvRanges,
      toPv: (ranges) => (mapped ? toPv(placed, ranges) : pvRanges.map(([o, l]) => [o, l])),
    };
  });
  areas.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < areas.length; i++) {
    const [prevOffset, prevLength, prevName] = areas[i - 1]!;
    const [offset, , name] = areas[i]!;
    if (offset < prevOffset + prevLength) {
      throw new CorruptError(`extents of LV ${name} and LV ${prevName} overlap on this PV`, {
        structure: 'LVM2 metadata text',
        offset,
        reason: 'overlap',
      });
    }
  }
  return volumes;
}
