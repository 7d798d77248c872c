import { CorruptError, FieldReader } from '@diskube/core';
import { applyFixups } from './mft-record.js';
import type { NtfsReason } from './reasons.js';

/**
 * What the $LogFile restart area says about the last shutdown:
 * - `empty`: filled with 0xFF (mkntfs, ntfs-3g after a clean unmount) — nothing to replay;
 * - `clean`: no client has the log open, or RESTART_VOLUME_IS_CLEAN is set;
 * - `unclean`: the log is open without the clean flag — there may be transactions to replay;
 * - `chkdsk`: a CHKD restart page, written by chkdsk, which leaves the log to be reset.
 */
export type LogFileState = 'empty' | 'clean' | 'unclean' | 'chkdsk';

const LOGFILE_NO_CLIENT = 0xffff;
const RESTART_VOLUME_IS_CLEAN = 0x0002;

/** How much of $LogFile `logFileState` wants: two restart pages of at most 64 KiB. */
export const LOGFILE_HEAD_SIZE = 2 * 65536;

interface RestartPage {
  state: LogFileState;
  currentLsn: number;
}

function parseRestartPage(page: Uint8Array, at: number): RestartPage {
  const s = '$LogFile restart page';
  const f = new FieldReader<NtfsReason>(page, s, at);
  const m = f.ascii(0, 4);
  applyFixups(page, s, at);
  const restart_area_offset = f.u16le(0x18);
  if (
    restart_area_offset < 0x1e ||
    (restart_area_offset & 7) !== 0 ||
    restart_area_offset + 0x10 > page.length
  ) {
    throw new CorruptError(`restart area offset ${restart_area_offset} is out of range`, {
      structure: s,
      offset: at + 0x18,
      reason: 'bad-offset',
    });
  }
  const ra = restart_area_offset;
  const current_lsn = f.u64le(ra);
  const client_in_use_list = f.u16le(ra + 0x0c);
  const flags = f.u16le(ra + 0x0e);
  let state: LogFileState;
  if (m === 'CHKD') state = 'chkdsk';
  else if (client_in_use_list === LOGFILE_NO_CLIENT || (flags & RESTART_VOLUME_IS_CLEAN) !== 0)
    state = 'clean';
  else state = 'unclean';
  return { state, currentLsn: current_lsn };
}

/**
 * Decide from the first bytes of $LogFile whether the volume was shut down cleanly.
 *
 * The log starts with two copies of the restart page (at 0 and at `system_page_size`); the one
 * with the higher current LSN is the newer. Throws `CorruptError` when neither copy is readable.
 *
 * Sources: ntfs-3g include/ntfs-3g/logfile.h (RESTART_PAGE_HEADER, RESTART_AREA) and
 * libntfs-3g/logfile.c (ntfs_check_logfile, ntfs_is_logfile_clean); Linux fs/ntfs/logfile.c.
 *
 * RESTART_PAGE_HEADER: 0x00 magic "RSTR"/"CHKD" · 0x04 usa_ofs · 0x06 usa_count ·
 * 0x10 system_page_size (4) · 0x14 log_page_size (4) · 0x18 restart_area_offset (2).
 * RESTART_AREA: 0x00 current_lsn (8) · 0x0c client_in_use_list (2) · 0x0e flags (2).
 */
export function logFileState(head: Uint8Array, at: number): LogFileState {
  const s = '$LogFile';
  const f = new FieldReader<NtfsReason>(head, s, at).need(512);
  if (head.every((b) => b === 0xff)) return 'empty';
  const candidates: RestartPage[] = [];
  let firstError: unknown;
  const m0 = f.ascii(0, 4);
  let pageSize = 0;
  if (m0 === 'RSTR' || m0 === 'CHKD') {
    pageSize = f.u32le(0x10);
  }
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw new CorruptError('$LogFile does not start with a valid restart page', {
      structure: s,
      offset: at,
      reason: 'logfile',
    });
  }
  for (const off of [0, pageSize]) {
    if (off + pageSize > head.length) continue;
    const page = head.slice(off, off + pageSize);
    const m = new FieldReader<NtfsReason>(page, s, at + off).ascii(0, 4);
    if (m !== 'RSTR' && m !== 'CHKD') continue;
    try {
      candidates.push(parseRestartPage(page, at + off));
    } catch (error) {
      firstError ??= error;
    }
  }
  if (candidates.length === 0) {
    throw new CorruptError('no readable $LogFile restart page', {
      structure: s,
      offset: at,
      reason: 'logfile',
      cause: firstError,
    });
  }
  candidates.sort((a, b) => b.currentLsn - a.currentLsn);
  return candidates[0]!.state;
}
