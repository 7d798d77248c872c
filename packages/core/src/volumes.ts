import type { Warning } from './driver.js';
import type { BlockSource } from './source.js';

/** One volume a volume manager hands out (an LVM logical volume). */
export interface Volume {
  readonly name: string;
  /** Bytes of the volume. */
  readonly size: number;
  /**
   * The volume's bytes, when its layout is mapped exactly; null when it is kept whole
   * (`keptWhole` says why: a thin pool, a raid image, a stripe on another device …).
   */
  readonly source: BlockSource | null;
  readonly keptWhole: Warning | null;
  /** Byte ranges `[offset, length]` of the parent holding the volume's bytes. */
  readonly parentRanges: ReadonlyArray<readonly [number, number]>;
  /** Maps byte ranges of `source` onto byte ranges of the parent. */
  toParent(ranges: Iterable<readonly [number, number]>): Array<[number, number]>;
}

/** What a volume manager found on one device: its group and the volumes it places there. */
export interface VolumeGroupLayout {
  /** The manager's name for its format (`lvm2`). */
  readonly format: string;
  /** The group's name (the VG). */
  readonly name: string;
  /**
   * Byte ranges of the parent always kept: labels, metadata areas, and bytes outside the
   * allocatable area. Bytes neither here nor in a volume's `parentRanges` are free.
   */
  readonly metadata: ReadonlyArray<readonly [number, number]>;
  readonly volumes: readonly Volume[];
  readonly facts: Readonly<Record<string, string | number>>;
  readonly warnings: readonly Warning[];
}

/**
 * A layer between a partition and filesystems (LVM2): it reads a device (a partition or a whole
 * disk) and hands out volumes as block sources, with a map of their ranges back onto the device.
 *
 * Contract:
 * - `probe` is cheap and never throws: it tells whether the device carries the manager's label.
 * - `open` resolves null when there is no label, or the layout; it rejects with a `DiskubeError`
 *   (`CORRUPT`, `UNSUPPORTED`, `IO`) when the label or metadata contradicts itself or the device.
 *   Every count and offset read from disk is checked before use.
 * - Every byte of the device a volume could hold data in is in some volume's `parentRanges` or
 *   in `metadata`, unless the manager's own metadata says no volume uses it (free extents).
 */
export interface VolumeManager {
  readonly name: string;
  probe(source: BlockSource): Promise<boolean>;
  open(source: BlockSource, options?: { signal?: AbortSignal }): Promise<VolumeGroupLayout | null>;
}
