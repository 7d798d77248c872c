import {
  type BlockSource,
  CorruptError,
  DiskubeError,
  readBytes,
  UnsupportedError,
  type Warning,
} from '@diskube/core';
import {
  hasLabelId,
  LABEL_SCAN_SECTORS,
  LABEL_SECTOR_SIZE,
  type PvLabel,
  parseLabel,
} from './label.js';
import { decodeMetadata, MDA_HEADER_SIZE, metadataPieces, parseMdaHeader } from './mda.js';
import { type PvEntry, parseVolumeGroup, type VolumeGroup } from './metadata.js';
import type { LvmReason } from './reasons.js';
import { type LogicalVolume, logicalVolumes } from './volume.js';

/** An LVM2 physical volume: its label, its VG's newest metadata, and its LVs. */
export interface PhysicalVolume {
  label: PvLabel;
  vg: VolumeGroup;
  /** This PV's entry in the VG metadata (found by the label's uuid). */
  pv: PvEntry;
  /**
   * Byte ranges `[offset, length]` of the PV that are always kept: the label sector and
   * everything before the first extent (the first metadata area among them), every metadata
   * area, and the bytes after the last extent.
   */
  metadata: Array<[number, number]>;
  /** Extents of this PV no LV uses: free space, not kept. */
  freeExtents: number;
  volumes: LogicalVolume[];
  warnings: Warning[];
}

const HEAD = LABEL_SCAN_SECTORS * LABEL_SECTOR_SIZE;

/** True when one of the first four sectors of `source` starts with `LABELONE`; never throws. */
export async function probePhysicalVolume(source: BlockSource): Promise<boolean> {
  try {
    if (source.size < HEAD) return false;
    const head = await readBytes(source, 0, HEAD);
    for (let s = 0; s < LABEL_SCAN_SECTORS; s++) if (hasLabelId(head, s)) return true;
    return false;
  } catch {
    return false;
  }
}

/** Reads every metadata area; the newest committed copy (highest seqno) wins. */
async function newestMetadata(source: BlockSource, label: PvLabel, warnings: Warning[]) {
  let best: VolumeGroup | null = null;
  let firstError: unknown = null;
  const found: VolumeGroup[] = [];
  for (const area of label.metadataAreas) {
    try {
      const header = parseMdaHeader(await readBytes(source, area.offset, MDA_HEADER_SIZE), area);
      if (!header.committed) continue;
      const pieces = [];
      for (const [offset, length] of metadataPieces(header))
        pieces.push(await readBytes(source, offset, length));
      const vg = parseVolumeGroup(
        decodeMetadata(header, pieces),
        header.start + header.committed.offset,
      );
      found.push(vg);
      if (!best || vg.seqno > best.seqno) best = vg;
    } catch (error) {
      if (!DiskubeError.isInstance(error) || error.code === 'IO') throw error;
      firstError ??= error;
      warnings.push({
        code: 'stale-metadata',
        message: `metadata area at byte ${area.offset}: ${error.message}`,
        offset: area.offset,
        ...(error.reason !== undefined ? { reason: error.reason } : {}),
      });
    }
  }
  if (!best) {
    if (firstError) throw firstError;
    throw new UnsupportedError(
      'no metadata area on this PV holds committed metadata (no VG, or its copies are on other PVs)',
      {
        structure: 'LVM2 PV header',
        offset: label.sector * LABEL_SECTOR_SIZE,
        reason: 'no-metadata' satisfies LvmReason,
      },
    );
  }
  for (const vg of found) {
    if (vg.seqno < best.seqno) {
      warnings.push({
        code: 'stale-metadata',
        message: `a metadata copy has seqno ${vg.seqno}, older than ${best.seqno}: the newest is used`,
      });
    }
  }
  return best;
}

/**
 * Reads the LVM2 PV whose bytes `source` holds (a partition, or a whole disk): label, PV
 * header, the newest committed VG metadata of its metadata areas, and its LVs. Resolves null
 * when there is no `LABELONE` label. Rejects with `CorruptError` (reasons in `LVM_REASONS`)
 * when the label, a checksum or the metadata contradicts itself or the source, and with
 * `UnsupportedError` when the PV holds no metadata of its own.
 */
export async function readPhysicalVolume(source: BlockSource): Promise<PhysicalVolume | null> {
  if (source.size < HEAD) return null;
  const label = parseLabel(await readBytes(source, 0, HEAD), source.size);
  if (!label) return null;
  const warnings: Warning[] = [];
  const vg = await newestMetadata(source, label, warnings);
  const pv = vg.physicalVolumes.find((p) => p.id === label.uuid);
  const fail = (message: string, reason: LvmReason, offset: number) =>
    new CorruptError(message, { structure: 'LVM2 metadata text', offset, reason });
  if (!pv) throw fail(`VG ${vg.name} does not list this PV (${label.uuid})`, 'pv-not-in-vg', 0);
  const extentsEnd = pv.peStart + pv.peCount * vg.extentSize;
  const dataArea = label.dataAreas[0]!;
  if (pv.peStart !== dataArea.offset || pv.peStart < HEAD) {
    throw fail(
      `pe_start ${pv.peStart} differs from the label's data area at ${dataArea.offset}`,
      'bad-extent-geometry',
      0,
    );
  }
  if (extentsEnd > source.size) {
    throw fail(
      `${pv.peCount} extents from ${pv.peStart} end past the ${source.size}-byte PV`,
      'out-of-range',
      pv.peStart,
    );
  }
  const metadata: Array<[number, number]> = [[0, pv.peStart]];
  for (const area of label.metadataAreas) metadata.push([area.offset, area.size]);
  if (extentsEnd < source.size) metadata.push([extentsEnd, source.size - extentsEnd]);
  const volumes = logicalVolumes(source, vg, pv);
  let used = 0;
  for (const lv of volumes) for (const [, length] of lv.pvRanges) used += length;
  for (const lv of volumes) if (lv.keptWhole) warnings.push(lv.keptWhole);
  return {
    label,
    vg,
    pv,
    metadata,
    freeExtents: pv.peCount - used / vg.extentSize,
    volumes,
    warnings,
  };
}
