import { CorruptError, FieldReader, UnsupportedError } from '@diskube/core';
import type { NtfsReason } from './reasons.js';

const STRUCTURE = 'NTFS boot sector';

/** The bytes `parseBootSector` needs: every field we read lies in the first 512 bytes. */
export const BOOT_SECTOR_SIZE = 512;

/** Largest cluster NTFS defines: 2 MiB (Windows 10 1709+, sectors-per-cluster byte 0xF4 at 512 B). */
export const MAX_CLUSTER_SIZE = 2 * 1024 * 1024;

export interface BootSector {
  bytesPerSector: number;
  /** Decoded sectors per cluster (not the raw byte). */
  sectorsPerCluster: number;
  clusterSize: number;
  /** Sectors in the volume as recorded; the backup boot sector sits at this sector number. */
  totalSectors: number;
  /** Clusters in the volume: `floor(totalSectors / sectorsPerCluster)`. */
  clusterCount: number;
  mftLcn: number;
  mftMirrLcn: number;
  mftRecordSize: number;
  indexRecordSize: number;
  /** Volume serial number as 16 hex digits (big-endian rendering of the little-endian u64). */
  serial: string;
}

/**
 * Decode the signed "clusters per record" byte used for MFT and index records: a positive value
 * counts clusters, a negative one is −log2 of the size in bytes (e.g. 0xF6 = −10 → 1024 bytes).
 */
export function decodeRecordSize(
  raw: number,
  clusterSize: number,
  field: string,
  at: number,
): number {
  const size = raw > 0 ? raw * clusterSize : raw < 0 && raw >= -31 ? 2 ** -raw : 0;
  // Records must be a whole number of 512-byte fixup strides; 64 KiB bounds the buffers we allocate.
  if (size < 512 || size > 65536 || (size & (size - 1)) !== 0) {
    throw new CorruptError(`${field} encodes an invalid record size (${raw} → ${size} bytes)`, {
      structure: STRUCTURE,
      offset: at,
      reason: 'bad-record-size',
    });
  }
  return size;
}

/**
 * Parse the NTFS boot sector (the first sector of the volume, $Boot).
 *
 * Sources: ntfs-3g include/ntfs-3g/layout.h (NTFS_BOOT_SECTOR, BIOS_PARAMETER_BLOCK);
 * libyal libfsntfs "New Technologies File System (NTFS)" §3 "Volume header".
 */
export function parseBootSector(bytes: Uint8Array, at = 0): BootSector {
  const f = new FieldReader<NtfsReason>(bytes, STRUCTURE, at).need(BOOT_SECTOR_SIZE);
  const s = STRUCTURE;
  const oem_id = f.ascii(3, 4) + f.ascii(7, 4);
  if (oem_id !== 'NTFS    ') {
    throw new CorruptError(`bad OEM id ${JSON.stringify(oem_id)}`, {
      structure: s,
      offset: at + 3,
      reason: 'bad-magic',
    });
  }
  const bytes_per_sector = f.u16le(0x0b);
  const sectors_per_cluster = f.u8(0x0d);
  const number_of_sectors = f.u64le(0x28);
  const mft_lcn = f.u64le(0x30);
  const mftmirr_lcn = f.u64le(0x38);
  const clusters_per_mft_record = f.i8(0x40);
  const clusters_per_index_record = f.i8(0x44);
  const end_of_sector_marker = f.u16le(0x1fe);

  if (end_of_sector_marker !== 0xaa55) {
    throw new CorruptError('missing 0x55AA end-of-sector marker', {
      structure: s,
      offset: at + 0x1fe,
      reason: 'bad-magic',
    });
  }
  if (
    bytes_per_sector < 512 ||
    bytes_per_sector > 4096 ||
    bytes_per_sector & (bytes_per_sector - 1)
  ) {
    throw new CorruptError(`bytes per sector ${bytes_per_sector} is not 512, 1024, 2048 or 4096`, {
      structure: s,
      offset: at + 0x0b,
      reason: 'bad-sector-size',
    });
  }
  // Values above 0x80 encode 2^(256 − v) sectors; this is how clusters above 64 KiB are written.
  let sectorsPerCluster: number;
  if (sectors_per_cluster === 0) {
    sectorsPerCluster = 0;
  } else if (sectors_per_cluster <= 0x80) {
    sectorsPerCluster = sectors_per_cluster;
  } else {
    const shift = 256 - sectors_per_cluster;
    sectorsPerCluster = shift <= 31 ? 2 ** shift : 0;
  }
  if (sectorsPerCluster === 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0) {
    throw new CorruptError(
      `sectors per cluster byte 0x${sectors_per_cluster.toString(16)} is invalid`,
      {
        structure: s,
        offset: at + 0x0d,
        reason: 'bad-cluster-size',
      },
    );
  }
  const clusterSize = sectorsPerCluster * bytes_per_sector;
  if (clusterSize > MAX_CLUSTER_SIZE) {
    throw new UnsupportedError(`cluster size ${clusterSize} exceeds the 2 MiB NTFS maximum`, {
      structure: s,
      offset: at + 0x0d,
      reason: 'cluster-size',
    });
  }
  const clusterCount = Math.floor(number_of_sectors / sectorsPerCluster);
  // $Boot alone takes 8 KiB and the system files need a few dozen clusters more.
  if (clusterCount < 2 || number_of_sectors * bytes_per_sector > Number.MAX_SAFE_INTEGER) {
    throw new CorruptError(`volume of ${number_of_sectors} sectors is out of range`, {
      structure: s,
      offset: at + 0x28,
      reason: 'bad-size',
    });
  }
  if (mft_lcn >= clusterCount || mftmirr_lcn >= clusterCount) {
    throw new CorruptError('$MFT or $MFTMirr cluster number lies outside the volume', {
      structure: s,
      offset: at + 0x30,
      reason: 'out-of-range',
    });
  }
  const mftRecordSize = decodeRecordSize(
    clusters_per_mft_record,
    clusterSize,
    'clusters per MFT record',
    at + 0x40,
  );
  const indexRecordSize = decodeRecordSize(
    clusters_per_index_record,
    clusterSize,
    'clusters per index record',
    at + 0x44,
  );
  const serial = f.u64leBig(0x48).toString(16).padStart(16, '0');
  return {
    bytesPerSector: bytes_per_sector,
    sectorsPerCluster,
    clusterSize,
    totalSectors: number_of_sectors,
    clusterCount,
    mftLcn: mft_lcn,
    mftMirrLcn: mftmirr_lcn,
    mftRecordSize,
    indexRecordSize,
    serial,
  };
}
