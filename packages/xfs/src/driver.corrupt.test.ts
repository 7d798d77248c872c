import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32cUpdate, hasErrorCode, memorySource } from '@diskube/core';
import { requireTools } from '@diskube/mkimage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xfsChecksum } from './checksum.js';
import { xfsDriver } from './driver.js';
import { buildXfs, geometry, readImage, repairCheck } from './images.test-support.js';
import { MATRIX } from './matrix.test-support.js';

// Corruption and dirty-log tests: bytes of real images are patched (and, where the test is about
// something other than the checksum, the CRC is recomputed so the intended check is the one that
// fires), then the driver must fail with the right code and reason.

const V5 = MATRIX['v5 defaults (4 KiB blocks, finobt, reflink, sparse inodes, bigtime)']!;
const FRAGMENTED = MATRIX['1 KiB blocks, fragmented free space (two-level bnobt)']!;
const V4 = MATRIX['v4 (crc=0)']!;

const u32 = (b: Uint8Array, at: number) =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
function flip(b: Uint8Array, at: number, mask: number): void {
  b[at] = b[at]! ^ mask;
}
/** Recompute the v5 CRC (stored little-endian at `crcAt`) of `length` bytes at `start`. */
function fixCrc(b: Uint8Array, start: number, length: number, crcAt: number): void {
  const crc = xfsChecksum(b.subarray(start, start + length), crcAt);
  for (let i = 0; i < 4; i++) b[start + crcAt + i] = (crc >>> (8 * i)) & 0xff;
}

async function failure(image: Uint8Array, assumeUsedOnDoubt = false) {
  try {
    const result = await xfsDriver.usedBlocks(memorySource(image), { assumeUsedOnDoubt });
    return { result };
  } catch (error) {
    if (
      !hasErrorCode(error, 'CORRUPT') &&
      !hasErrorCode(error, 'DIRTY') &&
      !hasErrorCode(error, 'UNSUPPORTED')
    )
      throw error;
    return { error };
  }
}
async function expectError(image: Uint8Array, code: string, reason: string, offset?: number) {
  const { error, result } = await failure(image);
  expect(result, 'expected an error').toBeUndefined();
  expect({ code: error!.code, reason: error!.reason }).toEqual({ code, reason });
  if (offset !== undefined) expect(error!.offset).toBe(offset);
  return error!;
}

const tools = requireTools(['mkfs.xfs', 'xfs_db', 'xfs_repair'], 'xfs corruption tests');

describe.runIf(tools)('xfs corruption of real images', () => {
  let v5: Uint8Array;
  let v4: Uint8Array;
  let frag: Uint8Array;
  let g: ReturnType<typeof geometry>;
  let gf: ReturnType<typeof geometry>;
  const sect = 512;
  beforeAll(() => {
    v5 = readImage(buildXfs(V5));
    v4 = readImage(buildXfs(V4));
    const fragPath = buildXfs(FRAGMENTED);
    frag = readImage(fragPath);
    g = geometry(buildXfs(V5));
    gf = geometry(fragPath);
  });
  const agf = (geo: typeof g, ag: number) => ag * geo.agblocks * geo.blockSize + sect;

  it('the pristine images are accepted', async () => {
    for (const img of [v5, v4, frag]) expect((await failure(img)).result).toBeDefined();
  });

  it('superblock: bad magic, CRC, geometry, features, NEEDSREPAIR, realtime', async () => {
    let img = v5.slice();
    img[0] = 0;
    await expectError(img, 'CORRUPT', 'bad-magic', 0);
    img = v5.slice();
    flip(img, 0x6c, 0x41); // sb_fname, covered by the CRC only
    await expectError(img, 'CORRUPT', 'checksum', 0xe0);
    img = v5.slice();
    put32(img, 0x54, g.agblocks + 1); // sb_agblocks
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'CORRUPT', 'bad-ag-geometry');
    img = v5.slice();
    put32(img, 0x0c, g.dblocks + 5000); // low half of sb_dblocks
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'CORRUPT', 'bad-block-count', 0x08);
    img = v5.slice();
    put32(img, 0xd8, u32(img, 0xd8) | 0x80000000); // an unknown incompat bit
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'UNSUPPORTED', 'unknown-feature');
    img = v5.slice();
    put32(img, 0xd4, u32(img, 0xd4) | 0x100); // an unknown ro-compat bit
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'UNSUPPORTED', 'unknown-feature');
    img = v5.slice();
    put32(img, 0xd8, u32(img, 0xd8) | 0x10); // NEEDSREPAIR
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'DIRTY', 'needs-repair', 0xd8);
    img = v5.slice();
    put32(img, 0x14, 1000); // sb_rblocks
    fixCrc(img, 0, sect, 0xe0);
    await expectError(img, 'UNSUPPORTED', 'realtime');
    // A source shorter than sb_dblocks says.
    await expectError(v5.subarray(0, v5.length - 4096), 'CORRUPT', 'truncated');
  });

  it('AGF: magic, CRC, seqno, levels, roots, free count', async () => {
    const at = agf(g, 1);
    let img = v5.slice();
    img[at] = 0;
    await expectError(img, 'CORRUPT', 'bad-magic', at);
    img = v5.slice();
    flip(img, at + 0x60, 1); // agf_spare64, covered by the CRC only
    await expectError(img, 'CORRUPT', 'checksum', at + 0xd8);
    const patched = (field: number, value: number) => {
      const out = v5.slice();
      put32(out, at + field, value);
      fixCrc(out, at, sect, 0xd8);
      return out;
    };
    await expectError(patched(0x08, 2), 'CORRUPT', 'bad-seqno', at + 0x08);
    await expectError(patched(0x1c, 30), 'CORRUPT', 'bad-level', at + 0x1c);
    await expectError(patched(0x10, g.agblocks + 7), 'CORRUPT', 'out-of-range', at + 0x10);
    await expectError(patched(0x34, u32(v5, at + 0x34) + 1), 'CORRUPT', 'free-count', at + 0x34);
    // The root pointing at another block that is not a bnobt block.
    await expectError(patched(0x10, u32(v5, at + 0x14)), 'CORRUPT', 'bad-magic');
    // v4 AGF (no CRC): the magic is still checked.
    const a4 = agf(geometry(buildXfs(V4)), 2);
    img = v4.slice();
    img[a4 + 1] = 0;
    await expectError(img, 'CORRUPT', 'bad-magic', a4);
  });

  it('a free extent the cntbt does not have is CORRUPT (btree-mismatch)', async () => {
    // Shift the largest extent of AG 1's cntbt (its last record, so the size order holds) by
    // one block: every block and count is still valid, but the two trees now disagree.
    const img = v5.slice();
    const bs = g.blockSize;
    const at = agf(g, 1);
    expect(u32(img, at + 0x20)).toBe(1); // cntlevel: the root is the only leaf
    const leaf = g.agblocks * bs + u32(img, at + 0x14) * bs;
    const last = leaf + 56 + (u16(img, leaf + 6) - 1) * 8;
    put32(img, last, u32(img, last) - 1);
    fixCrc(img, leaf, bs, 0x34);
    await expectError(img, 'CORRUPT', 'btree-mismatch', at + 0x14);
  });

  it('a btree block inside free space is CORRUPT (overlap)', async () => {
    // Copy AG 1's root leaf into the first block of its own first free extent and point the AGF
    // there: every field, CRC and count is consistent, but the tree now sits in free space.
    const img = v5.slice();
    const bs = g.blockSize;
    const agBase = g.agblocks * bs;
    const at = agf(g, 1);
    const root = u32(img, at + 0x10);
    const x = u32(img, agBase + root * bs + 56);
    img.copyWithin(agBase + x * bs, agBase + root * bs, agBase + (root + 1) * bs);
    put32(img, agBase + x * bs + 0x14, (g.agblocks + x) * (bs / 512)); // bb_blkno, low word
    fixCrc(img, agBase + x * bs, bs, 0x34);
    put32(img, at + 0x10, x);
    fixCrc(img, at, sect, 0xd8);
    await expectError(img, 'CORRUPT', 'overlap', at);
  });

  it('an AGFL window the kernel would reset: kept, with a warning', async () => {
    const at = agf(g, 0);
    const img = v5.slice();
    put32(img, at + 0x2c, u32(img, at + 0x2c) + 1); // agf_fllast one past flcount
    fixCrc(img, at, sect, 0xd8);
    const { result } = await failure(img);
    const pristine = (await failure(v5)).result!;
    expect(result!.warnings.map((w) => w.code)).toEqual(['agfl-needs-reset']);
    expect(result!.used.equals(pristine.used)).toBe(true);
  });

  it('AGFL: magic and CRC on v5', async () => {
    const at = agf(g, 0) + 2 * sect;
    let img = v5.slice();
    img[at] = 0;
    await expectError(img, 'CORRUPT', 'bad-magic', at);
    img = v5.slice();
    flip(img, at + sect - 1, 1); // an unused AGFL slot, covered by the CRC only
    await expectError(img, 'CORRUPT', 'checksum', at + 0x20);
  });

  describe('bnobt (the two-level tree of AG 2 in the fragmented 1 KiB image)', () => {
    const bs = 1024;
    const header = 56;
    const maxNode = Math.floor((bs - header) / 12);
    let agBase: number;
    let root: number;
    let leaf: number;
    beforeAll(() => {
      agBase = 2 * gf.agblocks * bs;
      const agfAt = agBase + sect;
      expect(u32(frag, agfAt + 0x1c)).toBe(2); // bnolevel
      root = agBase + u32(frag, agfAt + 0x10) * bs;
      leaf = agBase + u32(frag, root + header + maxNode * 8) * bs;
      expect(u16(frag, leaf + 6)).toBeGreaterThan(2);
    });
    const fix = (img: Uint8Array, block: number) => fixCrc(img, block, bs, 0x34);

    it('CRC and magic', async () => {
      let img = frag.slice();
      flip(img, leaf + bs - 1, 1);
      await expectError(img, 'CORRUPT', 'checksum', leaf + 0x34);
      img = frag.slice();
      img[root + 3] = 0x43; // AB3C
      fix(img, root);
      await expectError(img, 'CORRUPT', 'bad-magic', root);
    });

    it('level', async () => {
      const img = frag.slice();
      img[root + 5] = 3;
      fix(img, root);
      await expectError(img, 'CORRUPT', 'bad-level', root + 4);
    });

    it('child pointer outside the AG', async () => {
      const img = frag.slice();
      put32(img, root + header + maxNode * 8, gf.agblocks + 5);
      fix(img, root);
      await expectError(img, 'CORRUPT', 'out-of-range', root + header + maxNode * 8);
    });

    it('records out of order', async () => {
      const img = frag.slice();
      const r = leaf + header;
      const first = img.slice(r, r + 8);
      img.copyWithin(r, r + 8, r + 16);
      img.set(first, r + 8);
      fix(img, leaf);
      await expectError(img, 'CORRUPT', 'bad-key-order', r + 8);
    });

    it('overlapping records', async () => {
      const img = frag.slice();
      const r = leaf + header;
      // Stretch record 0 over record 1.
      put32(img, r + 4, u32(img, r + 8) - u32(img, r) + 1);
      fix(img, leaf);
      await expectError(img, 'CORRUPT', 'bad-key-order', r + 8);
    });

    it('a free extent past the end of the AG', async () => {
      const img = frag.slice();
      const n = u16(img, leaf + 6);
      const r = leaf + header + (n - 1) * 8;
      put32(img, r + 4, gf.agblocks);
      fix(img, leaf);
      await expectError(img, 'CORRUPT', 'out-of-range', r);
    });

    it('with assumeUsedOnDoubt a corrupt tree keeps everything, with a warning', async () => {
      const img = frag.slice();
      flip(img, leaf + bs - 1, 1);
      const { result } = await failure(img, true);
      expect(result!.used.count()).toBe(result!.blockCount);
      expect(result!.tail.used).toBe(true);
      expect(result!.warnings).toMatchObject([{ code: 'assumed-used', reason: 'checksum' }]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The log. mkfs writes a clean log (one unmount record, cycle 1); `xfs_db logformat -c N` writes
// a clean wrapped one (the unmount record at cycle N at block 0, the rest of the ring cycle N-1).
// Dirty logs are made by rewriting records so the last one before the head is not an unmount
// record, with the record CRC recomputed; `xfs_repair -n` confirms what the kernel would see.

/**
 * The record CRC (xlog_cksum): header (0x144 bytes, h_crc zeroed) then h_len bytes of data. mkfs
 * and logformat write records with h_crc 0, and no mount is allowed here, so this formula is not
 * checked against the kernel: the driver does not verify record CRCs (a torn record that the
 * kernel would drop makes the driver say DIRTY, the safe side).
 */
function recordCrc(img: Uint8Array, rec: number): number {
  const len = u32(img, rec + 0x0c);
  let c = crc32cUpdate(0xffffffff, img, rec, rec + 0x20);
  c = crc32cUpdate(c, new Uint8Array(4));
  c = crc32cUpdate(c, img, rec + 0x24, rec + 0x144);
  c = crc32cUpdate(c, img, rec + 512, rec + 512 + len);
  return ~c >>> 0;
}
function setRecordCrc(img: Uint8Array, rec: number): void {
  const crc = recordCrc(img, rec);
  for (let i = 0; i < 4; i++) img[rec + 0x20 + i] = (crc >>> (8 * i)) & 0xff;
}

describe.runIf(tools)('xfs log: clean and dirty logs', () => {
  let dir: string;
  let fresh: Uint8Array;
  let wrapped: Uint8Array;
  let logAt: number;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'diskube-xfs-log-'));
    const path = buildXfs(V5);
    fresh = readImage(path);
    const copy = join(dir, 'wrapped.img');
    writeFileSync(copy, fresh);
    execFileSync('xfs_db', ['-x', '-c', 'logformat -c 3', copy], { stdio: 'ignore' });
    wrapped = readImage(copy);
    const text = execFileSync('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p logstart', path], {
      encoding: 'utf8',
    });
    const logstart = Number(/logstart = (\d+)/.exec(text)![1]);
    const geo = geometry(path);
    const agblklog = Math.ceil(Math.log2(geo.agblocks));
    logAt =
      (Math.floor(logstart / 2 ** agblklog) * geo.agblocks + (logstart % 2 ** agblklog)) *
      geo.blockSize;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** What `xfs_logprint -t` says of the log: `log tail: T head: H state: <CLEAN|DIRTY>`. */
  const logprintState = (img: Uint8Array) => {
    const path = join(dir, 'logprint.img');
    writeFileSync(path, img);
    const out = spawnSync('xfs_logprint', ['-t', path], { encoding: 'utf8' }).stdout;
    return /state: <(\w+)>/.exec(out)?.[1];
  };
  const repairSays = (img: Uint8Array) => {
    const path = join(dir, 'check.img');
    writeFileSync(path, img);
    return repairCheck(path);
  };

  it('mkfs leaves a clean log: one unmount record', async () => {
    expect(u32(fresh, logAt)).toBe(0xfeedbabe);
    expect((await failure(fresh)).result).toBeDefined();
    expect(logprintState(fresh)).toBe('CLEAN');
  });

  it('a wrapped clean log (logformat -c 3) is clean', async () => {
    expect(u32(wrapped, logAt + 4)).toBe(3);
    expect((await failure(wrapped)).result).toBeDefined();
    expect(repairSays(wrapped).status).toBe(0);
    expect(logprintState(wrapped)).toBe('CLEAN');
  });

  it('an unmount record turned into a commit is DIRTY (wrapped log)', async () => {
    const img = wrapped.slice();
    img[logAt + 512 + 9] = 0x02; // oh_flags: XLOG_COMMIT_TRANS instead of XLOG_UNMOUNT_TRANS
    setRecordCrc(img, logAt);
    const error = await expectError(img, 'DIRTY', 'log-dirty');
    expect(error.structure).toBe('XFS log');
    const repair = repairSays(img);
    expect(repair.status).not.toBe(0);
    expect(repair.output).toMatch(/log/i);
    expect(logprintState(img)).toBe('DIRTY');
  });

  it('a record written after the unmount record is DIRTY (fresh log)', async () => {
    const img = fresh.slice();
    // Copy the record (header + one data BB) to BBs 2–3, as a commit at lsn 1/2, tail 1/0.
    img.copyWithin(logAt + 1024, logAt, logAt + 1024);
    const rec = logAt + 1024;
    put32(img, rec + 0x14, 2); // h_lsn low word: block 2
    put32(img, rec + 0x24, 0); // h_prev_block
    img[rec + 512 + 9] = 0x02;
    setRecordCrc(img, rec);
    await expectError(img, 'DIRTY', 'log-dirty', rec + 1024);
    expect(repairSays(img).status).not.toBe(0);
    expect(logprintState(img)).toBe('DIRTY');
    const { result } = await failure(img, true);
    expect(result!.used.count()).toBe(result!.blockCount);
    expect(result!.warnings).toMatchObject([{ code: 'assumed-used', reason: 'log-dirty' }]);
  });

  it('a log record of another filesystem is CORRUPT', async () => {
    const img = fresh.slice();
    flip(img, logAt + 0x130, 0xff); // h_fs_uuid
    await expectError(img, 'CORRUPT', 'bad-uuid');
  });

  it('a log that lies outside its AG is CORRUPT', async () => {
    const img = fresh.slice();
    put32(img, 0x60, 1 << 30); // sb_logblocks
    fixCrc(img, 0, 512, 0xe0);
    await expectError(img, 'CORRUPT', 'bad-log-location', 0x30);
  });
});
