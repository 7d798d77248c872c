import { FieldReader } from '@diskube/core';
import { agflSize, NULLAGBLOCK, sameUuid } from './agf.js';
import { storedChecksum, xfsChecksum } from './checksum.js';
import type { XfsReason } from './reasons.js';
import type { Superblock } from './superblock.js';

// Sources: kernel fs/xfs/libxfs/xfs_format.h (struct xfs_agfl, XFS_AGFL_MAGIC), fs/xfs/libxfs/
// xfs_alloc.c (xfs_agfl_verify, xfs_agfl_needs_reset, xfs_alloc_get_freelist).

export const XFS_AGFL_MAGIC = 0x5841464c; // 'XAFL'
const AGFL_CRC = 0x20;

/** The AGFL's active window, from the AGF. */
export interface AgflWindow {
  flfirst: number;
  fllast: number;
  flcount: number;
}

/**
 * The blocks listed on the AG free list between flfirst and fllast, wrapping at the end of the
 * array, or `null` when the window is inconsistent. The kernel resets such a list on the next
 * mount (xfs_agfl_needs_reset; older kernels disagreed on the array size by one slot), leaking
 * its blocks: they are then in neither btree, so they count as used either way.
 */
export function parseAgfl(
  bytes: Uint8Array,
  offset: number,
  sb: Superblock,
  agno: number,
  agLength: number,
  window: AgflWindow,
): number[] | null {
  const f = new FieldReader<XfsReason>(bytes, `XFS AGFL ${agno}`, offset).need(sb.sectsize);
  const size = agflSize(sb);
  let base = 0;
  if (sb.version === 5) {
    const agfl_magicnum = f.u32be(0x00);
    if (agfl_magicnum !== XFS_AGFL_MAGIC) {
      throw f.corrupt(`bad magic 0x${agfl_magicnum.toString(16)}`, 0x00, 'bad-magic');
    }
    if (xfsChecksum(bytes, AGFL_CRC, 0, sb.sectsize) !== storedChecksum(bytes, AGFL_CRC)) {
      throw f.corrupt('checksum mismatch', AGFL_CRC, 'checksum');
    }
    if (!sameUuid(f.slice(0x08, 16), sb.metaUuid)) {
      throw f.corrupt('uuid differs from the superblock', 0x08, 'bad-uuid');
    }
    const agfl_seqno = f.u32be(0x04);
    if (agfl_seqno !== agno)
      throw f.corrupt(`seqno ${agfl_seqno} in AG ${agno}`, 0x04, 'bad-seqno');
    base = 0x24;
  }
  const { flfirst, fllast, flcount } = window;
  if (flcount === 0) return [];
  if (
    flfirst >= size ||
    fllast >= size ||
    flcount > size ||
    (fllast - flfirst + size) % size !== flcount - 1
  ) {
    return null;
  }
  const blocks: number[] = [];
  for (let k = 0, i = flfirst; k < flcount; k++, i = (i + 1) % size) {
    const at = base + i * 4;
    const bno = f.u32be(at);
    if (bno === NULLAGBLOCK || bno >= agLength) {
      throw f.corrupt(`free-list entry ${i} is block ${bno}`, at, 'out-of-range');
    }
    blocks.push(bno);
  }
  return blocks;
}
