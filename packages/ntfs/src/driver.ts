import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  type CrossCheckReport,
  DirtyFilesystemError,
  DiskubeError,
  FieldReader,
  type FilesystemDriver,
  type ProbeResult,
  type Tail,
  UnsupportedError,
  type UsedBlocks,
  type UsedBlocksOptions,
  type Warning,
} from '@diskube/core';
import {
  AT_BITMAP,
  AT_DATA,
  AT_INDEX_ALLOCATION,
  AT_INDEX_ROOT,
  AT_VOLUME_INFORMATION,
  AT_VOLUME_NAME,
  ATTR_COMPRESSION_MASK,
  ATTR_IS_SPARSE,
} from './attribute.js';
import { BOOT_SECTOR_SIZE, type BootSector, parseBootSector } from './boot-sector.js';
import { crossCheckWalk } from './cross-check.js';
import { type DirectoryEntry, parseIndexBlock, parseIndexRoot } from './directory-index.js';
import { LOGFILE_HEAD_SIZE, type LogFileState, logFileState } from './logfile.js';
import { decodeRunlist, SPARSE } from './runlist.js';
import {
  type AttributeStream,
  FILE_BADCLUS,
  FILE_BITMAP,
  FILE_LOGFILE,
  FILE_ROOT,
  FILE_VOLUME,
  NtfsVolume,
} from './volume.js';
import {
  parseVolumeInformation,
  VOLUME_CHKDSK_UNDERWAY,
  VOLUME_IS_DIRTY,
} from './volume-information.js';

/** $Bitmap is read in pieces of this many bytes (8 Mi clusters), so memory stays ~ the result. */
const BITMAP_CHUNK = 1 << 20;

/** Bytes of hiberfil.sys that ntfs-3g inspects (NTFS_HIBERFILE_HEADER_SIZE). */
const HIBERFILE_HEADER_SIZE = 4096;

/**
 * Root directory indexes larger than this are not walked for hiberfil.sys. A root directory with
 * a million entries needs about 100 MiB of index; 1 GiB bounds the time spent on hostile sizes.
 */
const MAX_ROOT_INDEX_SIZE = 1 << 30;

async function readLabel(vol: NtfsVolume): Promise<string> {
  const volume = await vol.openFile(FILE_VOLUME);
  const name = vol.stream(volume, AT_VOLUME_NAME);
  if (!name?.resident) return '';
  return new FieldReader(name.value, '$VOLUME_NAME', name.offset).utf16le(
    0,
    name.value.length >> 1,
  );
}

type HiberfileState = 'absent' | 'not-hibernated' | 'hibernated';

/**
 * Look for /hiberfil.sys in the root directory index and read its first 4 KiB, following
 * ntfs-3g's ntfs_volume_check_hiberfile: a file shorter than 4 KiB, or one starting with "hibr"
 * or "HIBR" (Windows 8+ Fast Startup writes the upper-case form), means Windows is hibernated
 * and the volume will be replayed from memory on resume. We also count "rstr"/"RSTR" (a resume
 * in progress) as hibernated; "wake" and zeros mean the image was consumed.
 *
 * The whole root index is walked (index root plus every in-use "INDX" block) rather than
 * searched as a B+ tree, so no $UpCase collation is needed; names are compared with
 * `toUpperCase`, which folds the ASCII letters of "hiberfil.sys" like $UpCase does.
 */
async function hiberfileState(vol: NtfsVolume): Promise<HiberfileState> {
  const root = await vol.openFile(FILE_ROOT);
  const s = 'root directory index';
  const rootStream = vol.stream(root, AT_INDEX_ROOT, '$I30');
  if (!rootStream?.resident) {
    throw new CorruptError('root directory has no resident $INDEX_ROOT $I30', {
      structure: s,
      reason: 'bad-index',
    });
  }
  const indexRoot = parseIndexRoot(rootStream.value, rootStream.offset);
  const candidates: DirectoryEntry[] = [];
  const consider = (entries: DirectoryEntry[]) => {
    for (const e of entries) {
      if (e.parentRecord === FILE_ROOT && e.name.toUpperCase() === 'HIBERFIL.SYS')
        candidates.push(e);
    }
  };
  consider(indexRoot.entries);
  const allocation = vol.stream(root, AT_INDEX_ALLOCATION, '$I30');
  if (allocation) {
    if (allocation.dataSize > MAX_ROOT_INDEX_SIZE) {
      throw new CorruptError(`root index of ${allocation.dataSize} bytes is too large to walk`, {
        structure: s,
        offset: allocation.offset,
        reason: 'bad-size',
      });
    }
    const blockSize = indexRoot.indexBlockSize;
    const blocks = Math.floor(allocation.dataSize / blockSize);
    const bitmapStream = vol.stream(root, AT_BITMAP, '$I30');
    let inUse: Uint8Array | undefined;
    if (bitmapStream) {
      inUse = new Uint8Array(Math.min(bitmapStream.dataSize, Math.ceil(blocks / 8)));
      await vol.readStream(bitmapStream, 0, inUse, '$I30 $BITMAP');
    }
    const block = new Uint8Array(blockSize);
    for (let i = 0; i < blocks; i++) {
      // Without a $BITMAP every block is taken as in use; stale blocks only add candidates,
      // and each candidate's MFT record is checked below.
      if (inUse && !((inUse[i >> 3] ?? 0) & (1 << (i & 7)))) continue;
      await vol.readStream(allocation, i * blockSize, block, s);
      consider(parseIndexBlock(block, allocation.offset));
    }
  }
  for (const c of candidates) {
    const file = await vol.openFile(c.record).catch((error: unknown) => {
      // A stale entry may point at a record that is free now: not our file.
      if (DiskubeError.isInstance(error) && error.reason === 'bad-record') return undefined;
      throw error;
    });
    if (!file || file.header.sequenceNumber !== c.sequence) continue;
    const data = vol.stream(file, AT_DATA);
    if (!data || data.dataSize < HIBERFILE_HEADER_SIZE) return 'hibernated';
    const head = new Uint8Array(4);
    await vol.readStream(data, 0, head, 'hiberfil.sys');
    const sig = String.fromCharCode(...head);
    if (sig === 'hibr' || sig === 'HIBR' || sig === 'rstr' || sig === 'RSTR') return 'hibernated';
    return 'not-hibernated';
  }
  return 'absent';
}

async function readLogFileState(vol: NtfsVolume): Promise<LogFileState> {
  const file = await vol.openFile(FILE_LOGFILE);
  const data = vol.stream(file, AT_DATA);
  if (!data) {
    throw new CorruptError('$LogFile has no $DATA attribute', {
      structure: '$LogFile',
      reason: 'logfile',
    });
  }
  const head = new Uint8Array(Math.min(data.dataSize, LOGFILE_HEAD_SIZE));
  await vol.readStream(data, 0, head, '$LogFile');
  return logFileState(head, data.offset);
}

function refuseSparseOrCompressed(stream: AttributeStream, structure: string): void {
  const sparseRun = !stream.resident && stream.runs.some((r) => r.lcn === SPARSE);
  if (stream.flags & ATTR_COMPRESSION_MASK || stream.flags & ATTR_IS_SPARSE || sparseRun) {
    throw new UnsupportedError(
      `${structure} is compressed or sparse; refusing to guess its layout`,
      {
        structure,
        offset: stream.offset,
        reason:
          stream.flags & ATTR_COMPRESSION_MASK ? 'compressed-system-file' : 'sparse-system-file',
      },
    );
  }
}

/** Copy $Bitmap into `used`, one chunk at a time; bits past the cluster count are ignored. */
async function readClusterBitmap(
  vol: NtfsVolume,
  used: Bitmap,
  signal?: AbortSignal,
): Promise<void> {
  const { clusterCount } = vol.boot;
  const file = await vol.openFile(FILE_BITMAP);
  const s = '$Bitmap';
  const data = vol.stream(file, AT_DATA);
  if (!data)
    throw new CorruptError('$Bitmap has no $DATA attribute', {
      structure: s,
      reason: 'bad-bitmap',
    });
  refuseSparseOrCompressed(data, s);
  const needed = Math.ceil(clusterCount / 8);
  if (data.dataSize < needed) {
    throw new CorruptError(
      `$Bitmap holds ${data.dataSize} bytes, ${needed} needed for ${clusterCount} clusters`,
      {
        structure: s,
        offset: data.offset,
        reason: 'bad-bitmap',
      },
    );
  }
  const chunk = new Uint8Array(Math.min(BITMAP_CHUNK, needed));
  for (let off = 0; off < needed; off += chunk.length) {
    signal?.throwIfAborted();
    const n = Math.min(chunk.length, needed - off);
    const part = chunk.subarray(0, n);
    await vol.readStream(data, off, part, s);
    used.setBytes(off * 8, part, Math.min(n * 8, clusterCount - off * 8));
  }
}

/** The system files in MFT records 0–11 (ntfs-3g layout.h NTFS_SYSTEM_FILES), for messages. */
const SYSTEM_FILE_NAMES = [
  '$MFT',
  '$MFTMirr',
  '$LogFile',
  '$Volume',
  '$AttrDef',
  'root directory',
  '$Bitmap',
  '$Boot',
  '$BadClus',
  '$Secure',
  '$UpCase',
  '$Extend',
];

/**
 * Records 12–15 are reserved system records: checked like the others when in use (Windows marks
 * them so, mkntfs does too), skipped when free. Records from 16 on are ordinary files, or
 * $Extend's children ($Quota, $ObjId, $Reparse, $UsnJrnl), which have no fixed number; only the
 * `crossCheck` walk reaches them.
 */
const RESERVED_RECORDS = 16;

/**
 * The cross-check that costs nothing extra: every cluster the system files reference must be
 * allocated in $Bitmap. $Bitmap is the only record of cluster allocation NTFS keeps (there is no
 * free-cluster count to compare with; ntfs-3g computes free space from $Bitmap itself), so the
 * "accounting" it can be held against is the runlists of the files every volume has. Checked:
 * every non-resident attribute (all extents, through attribute lists) of records 0–11 — $MFT
 * (including its $BITMAP and an $ATTRIBUTE_LIST), $MFTMirr, $LogFile, $Volume, $AttrDef, the root
 * index, $Bitmap, $Boot, $BadClus:$Bad (bad clusters are allocated), $Secure ($SDS and its
 * indexes), $UpCase, $Extend — and of records 12–15 when in use. These cost 16 record reads.
 *
 * One contradicted cluster proves $Bitmap wrong, and then none of it is trusted (core's doubt
 * policy): `CORRUPT bitmap-contradicted`, everything used under `assumeUsedOnDoubt`. Keeping the
 * system clusters while trusting the same bitmap for user files would drop the user files.
 */
async function checkSystemFiles(vol: NtfsVolume, used: Bitmap): Promise<void> {
  let missing = 0;
  let first: { record: number; lcn: number } | undefined;
  for (let record = 0; record < RESERVED_RECORDS; record++) {
    if (record >= SYSTEM_FILE_NAMES.length) {
      // A reserved record holds nothing on a sound volume; one that is unreadable or free is
      // no evidence about $Bitmap, so it is skipped rather than refused.
      const reserved = await vol.readRecord(record).catch((error: unknown) => {
        if (DiskubeError.isInstance(error) && error.code === 'CORRUPT') return undefined;
        throw error;
      });
      if (!reserved?.header.inUse || reserved.header.baseRecord !== 0) continue;
    }
    const file = await vol.openFile(record);
    for (const a of file.attributes) {
      if (a.resident) continue;
      const runs = decodeRunlist(
        a.mappingPairs,
        a.lowestVcn,
        a.highestVcn,
        vol.boot.clusterCount,
        `attribute 0x${a.type.toString(16)} of MFT record ${a.recordNumber}`,
        a.mappingPairsOffset,
      );
      for (const r of runs) {
        if (r.lcn === SPARSE) continue;
        const free = r.length - used.countRange(r.lcn, r.length);
        if (free === 0) continue;
        missing += free;
        first ??= { record, lcn: used.nextClear(r.lcn) };
      }
    }
  }
  if (first) {
    const name = SYSTEM_FILE_NAMES[first.record] ?? `reserved record ${first.record}`;
    throw new CorruptError(
      `$Bitmap marks ${missing} clusters of system files free, the first at LCN ${first.lcn} (${name}); the cluster map is wrong, so none of it is trusted`,
      {
        structure: '$Bitmap',
        offset: first.lcn * vol.boot.clusterSize,
        reason: 'bitmap-contradicted',
      },
    );
  }
}

/** Clusters listed in $BadClus:$Bad (a sparse stream whose allocated runs are the bad clusters). */
async function countBadClusters(vol: NtfsVolume): Promise<number> {
  const bad = vol.stream(await vol.openFile(FILE_BADCLUS), AT_DATA, '$Bad');
  if (!bad || bad.resident) return 0;
  return bad.runs.reduce((n, r) => (r.lcn === SPARSE ? n : n + r.length), 0);
}

function tailOf(boot: BootSector, sourceSize: number): Tail {
  const offset = boot.clusterCount * boot.clusterSize;
  const length = sourceSize - offset;
  const backupAt = boot.totalSectors * boot.bytesPerSector;
  const holdsBackup = backupAt + boot.bytesPerSector <= sourceSize;
  return {
    offset,
    length,
    used: length > 0,
    reason:
      length === 0
        ? 'no bytes after the last cluster'
        : holdsBackup
          ? 'holds the NTFS backup boot sector (after the last cluster); kept with any bytes past the volume end'
          : 'bytes after the last cluster (partial cluster); kept',
  };
}

async function checkTail(
  source: BlockSource,
  boot: BootSector,
  warnings: Warning[],
): Promise<void> {
  const backupAt = boot.totalSectors * boot.bytesPerSector;
  const volumeEnd = backupAt + boot.bytesPerSector;
  if (volumeEnd > source.size) {
    warnings.push({
      code: 'backup-boot-sector-missing',
      message: 'the source ends before the backup boot sector (volume last sector)',
      offset: backupAt,
    });
    return;
  }
  const bytes = new Uint8Array(BOOT_SECTOR_SIZE);
  await source.read(backupAt, bytes);
  try {
    parseBootSector(bytes, backupAt);
  } catch {
    warnings.push({
      code: 'backup-boot-sector-invalid',
      message:
        'the backup boot sector in the last sector of the volume is not a valid NTFS boot sector',
      offset: backupAt,
    });
  }
  if (volumeEnd < source.size) {
    warnings.push({
      code: 'tail-after-filesystem',
      message: `${source.size - volumeEnd} bytes follow the NTFS volume; they are kept as part of the tail`,
      offset: volumeEnd,
    });
  }
}

/**
 * The errors `assumeUsedOnDoubt` absorbs (core's doubt policy): DIRTY and CORRUPT. UNSUPPORTED is
 * left to the layer above (it keeps the filesystem whole), IO and INVALID_ARGUMENT always reject.
 */
function isDoubt(error: unknown): error is DiskubeError {
  return DiskubeError.isInstance(error) && (error.code === 'CORRUPT' || error.code === 'DIRTY');
}

async function usedBlocks(
  source: BlockSource,
  options: UsedBlocksOptions = {},
): Promise<UsedBlocks> {
  const boot = await NtfsVolume.readBoot(source);
  const { clusterCount, clusterSize } = boot;
  const warnings: Warning[] = [];
  const facts: UsedBlocks['facts'] = {
    clusterSize,
    clusterCount,
    bytesPerSector: boot.bytesPerSector,
    mftRecordSize: boot.mftRecordSize,
    indexRecordSize: boot.indexRecordSize,
    mftLcn: boot.mftLcn,
    mftMirrLcn: boot.mftMirrLcn,
    serial: boot.serial,
  };
  const used = new Bitmap(clusterCount);
  let crossCheck: CrossCheckReport | undefined;
  try {
    const vol = await NtfsVolume.open(source, boot);
    facts.mftRecords = vol.mftRecordCount;
    facts.mftFragments = vol.mftRuns.length;
    facts.mftExtensionRecords = vol.mftExtensionRecords.length;

    const volume = await vol.openFile(FILE_VOLUME);
    const info = vol.stream(volume, AT_VOLUME_INFORMATION);
    if (!info?.resident) {
      throw new CorruptError('$Volume has no resident $VOLUME_INFORMATION', {
        structure: '$Volume',
        reason: 'bad-volume',
      });
    }
    const vi = parseVolumeInformation(info.value, info.offset);
    facts.version = `${vi.majorVersion}.${vi.minorVersion}`;
    facts.volumeFlags = vi.flags;
    facts.label = await readLabel(vol);
    if (vi.flags & (VOLUME_IS_DIRTY | VOLUME_CHKDSK_UNDERWAY)) {
      throw new DirtyFilesystemError(
        'the volume is marked dirty (not cleanly unmounted, or chkdsk pending)',
        {
          structure: '$VOLUME_INFORMATION',
          offset: info.offset,
          reason: 'dirty',
        },
      );
    }
    const log = await readLogFileState(vol);
    facts.logFile = log;
    if (log === 'unclean' || log === 'chkdsk') {
      throw new DirtyFilesystemError(
        `$LogFile is ${log === 'chkdsk' ? 'marked by chkdsk' : 'not clean'}`,
        {
          structure: '$LogFile',
          reason: 'logfile-unclean',
        },
      );
    }
    const hiber = await hiberfileState(vol);
    facts.hiberfile = hiber;
    if (hiber === 'hibernated') {
      throw new DirtyFilesystemError(
        'Windows is hibernated (or Fast Startup left it suspended) on this volume',
        {
          structure: 'hiberfil.sys',
          reason: 'hibernated',
        },
      );
    }

    await readClusterBitmap(vol, used, options.signal);
    await checkSystemFiles(vol, used);
    if (options.crossCheck) {
      const walk = await crossCheckWalk(vol, used, options.signal);
      warnings.push(...walk.warnings);
      crossCheck = walk.report;
    }
    const bad = await countBadClusters(vol);
    facts.badClusters = bad;
    if (bad > 0) {
      warnings.push({
        code: 'bad-clusters',
        message: `${bad} clusters are listed in $BadClus; they stay marked used (copied), reading them may fail on failing media`,
      });
    }
  } catch (error) {
    if (!options.assumeUsedOnDoubt || !isDoubt(error)) throw error;
    used.setAll();
    crossCheck = undefined;
    warnings.length = 0;
    warnings.push({
      code: 'assumed-used',
      message: `every cluster is marked used because the allocation map cannot be trusted: ${(error as Error).message}`,
      reason: error.reason ?? error.code.toLowerCase(),
      ...(error.offset !== undefined ? { offset: error.offset } : {}),
    });
    facts.doubt = error.reason ?? error.code;
  }
  await checkTail(source, boot, warnings);
  return {
    filesystem: 'ntfs',
    blockSize: clusterSize,
    blockCount: clusterCount,
    used,
    tail: tailOf(boot, source.size),
    warnings,
    facts,
    ...(crossCheck ? { crossCheck } : {}),
  };
}

async function probe(source: BlockSource): Promise<ProbeResult | null> {
  try {
    if (source.size < BOOT_SECTOR_SIZE) return null;
    const bytes = new Uint8Array(BOOT_SECTOR_SIZE);
    await source.read(0, bytes);
    const boot = parseBootSector(bytes, 0);
    const result: ProbeResult = { filesystem: 'ntfs', blockSize: boot.clusterSize };
    try {
      // The label costs three small reads; a volume we cannot read it from is still NTFS.
      const label = await readLabel(await NtfsVolume.open(source, boot));
      if (label) result.label = label;
    } catch {
      // Left to usedBlocks to report.
    }
    return result;
  } catch {
    return null;
  }
}

/** The NTFS driver: used clusters from $Bitmap, read through $MFT. */
export const ntfsDriver: FilesystemDriver = {
  name: 'ntfs',
  probe,
  usedBlocks,
};
