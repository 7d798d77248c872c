import { readFileSync } from 'node:fs';
import { type BlockSource, IoError, memorySource, type UsedBlocks } from '@diskube/core';
import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { hex, type Outcome, patchProtected, restartPage } from './hex.test-support.js';
import {
  buildNtfsImage,
  NTFS_TOOLS,
  type NtfsImageSpec,
  ntfs3gBitmap,
} from './images.test-support.js';
import { NtfsVolume } from './volume.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');
const MiB = 1 << 20;

const BASE: NtfsImageSpec = {
  size: 16 * MiB,
  cluster: 4096,
  label: 'state',
  steps: [{ op: 'files', prefix: 'f', count: 20, sizes: [100, 9000] }],
};

/** A fresh in-memory copy of the image for `spec` (tests patch it). */
function image(spec: NtfsImageSpec = BASE): Uint8Array {
  return new Uint8Array(readFileSync(buildNtfsImage(spec)));
}

interface Layout {
  clusterSize: number;
  recordSize: number;
  /** Byte offset of MFT record `n` (records in $MFT's first run, as mkntfs lays them out). */
  record(n: number): number;
  logFileLcn: number;
}

async function layout(bytes: Uint8Array): Promise<Layout> {
  const vol = await NtfsVolume.open(memorySource(bytes));
  const { clusterSize, mftRecordSize } = vol.boot;
  const first = vol.mftRuns[0]!;
  const log = vol.stream(await vol.openFile(2), 0x80);
  return {
    clusterSize,
    recordSize: mftRecordSize,
    record: (n) => {
      expect((n + 1) * mftRecordSize).toBeLessThanOrEqual(first.length * clusterSize);
      return first.lcn * clusterSize + n * mftRecordSize;
    },
    logFileLcn: log && !log.resident ? log.runs[0]!.lcn : -1,
  };
}

/** Offset (in the plain record) of the first attribute of `type`, optionally with `name`. */
function findAttribute(record: Uint8Array, type: number): number {
  const v = new DataView(record.buffer, record.byteOffset);
  let pos = v.getUint16(0x14, true);
  for (;;) {
    const t = v.getUint32(pos, true);
    if (t === 0xffffffff) throw new Error(`attribute 0x${type.toString(16)} not found`);
    if (t === type) return pos;
    pos += v.getUint32(pos + 4, true);
  }
}

/** Insert `attribute` (8-byte aligned) before the end marker of a plain record. */
function insertAttribute(record: Uint8Array, attribute: Uint8Array): void {
  const v = new DataView(record.buffer, record.byteOffset);
  const inUse = v.getUint32(0x18, true);
  const end = inUse - 8; // mkntfs/ntfs-3g: end marker + 4 bytes
  expect(v.getUint32(end, true)).toBe(0xffffffff);
  record.copyWithin(end + attribute.length, end, inUse);
  record.set(attribute, end);
  v.setUint32(0x18, inUse + attribute.length, true);
}

/** A resident $ATTRIBUTE_LIST attribute record whose value is the given entries. */
function residentAttributeList(entries: Uint8Array): Uint8Array {
  const length = 0x18 + entries.length;
  const attr = hex('20000000', length);
  const v = new DataView(attr.buffer);
  v.setUint32(4, length, true);
  v.setUint16(0x0a, 0x18, true);
  v.setUint32(0x10, entries.length, true);
  v.setUint16(0x14, 0x18, true);
  attr.set(entries, 0x18);
  return attr;
}

/** One attribute list entry (0x20 bytes, unnamed). */
function listEntry(type: number, lowestVcn: number, record: number): Uint8Array {
  const e = new Uint8Array(0x20);
  const v = new DataView(e.buffer);
  v.setUint32(0, type, true);
  v.setUint16(4, 0x20, true);
  e[7] = 0x1a;
  v.setBigUint64(8, BigInt(lowestVcn), true);
  v.setBigUint64(0x10, BigInt(record), true);
  return e;
}

async function outcome(bytes: Uint8Array, assumeUsedOnDoubt = false): Promise<string | UsedBlocks> {
  try {
    return await ntfsDriver.usedBlocks(memorySource(bytes), { assumeUsedOnDoubt });
  } catch (error) {
    const e = error as { code?: string; reason?: string };
    if (!e.code) throw error;
    return `${e.code}/${e.reason}`;
  }
}

describe.skipIf(!tools)('refusals: dirty, unclean $LogFile, hibernation', () => {
  it('refuses a volume whose $VOLUME_INFORMATION has the dirty flag, or copies all on doubt', async () => {
    const bytes = image();
    const at = await layout(bytes);
    patchProtected(bytes, at.record(3), at.recordSize, (r, v) => {
      const a = findAttribute(r, 0x70);
      const value = a + v.getUint16(a + 0x14, true);
      v.setUint16(value + 0x0a, 0x0001, true);
    });
    expect(await outcome(bytes)).toBe<Outcome>('DIRTY/dirty');
    const all = (await outcome(bytes, true)) as UsedBlocks;
    expect(all.used.count()).toBe(all.blockCount);
    expect(all.warnings.map((w) => w.code)).toContain('assumed-used');
    expect(all.warnings.find((w) => w.code === 'assumed-used')?.reason).toBe('dirty');
    expect(all.facts.doubt).toBe('dirty');
  });

  it('reads the $LogFile restart area: unclean and chkdsk pages refuse, clean ones pass', async () => {
    for (const [page, expected] of [
      [restartPage({ lsn: 100, inUse: 0, flags: 0 }), 'DIRTY/logfile-unclean'],
      [restartPage({ magic: 'CHKD', lsn: 100, inUse: 0xffff, flags: 0 }), 'DIRTY/logfile-unclean'],
      [restartPage({ lsn: 100, inUse: 0, flags: 2 }), 'clean'],
      [restartPage({ lsn: 100, inUse: 0xffff, flags: 0 }), 'clean'],
    ] as const) {
      const bytes = image();
      const at = await layout(bytes);
      bytes.set(page, at.logFileLcn * at.clusterSize);
      bytes.set(page, at.logFileLcn * at.clusterSize + 4096);
      const result = await outcome(bytes);
      if (typeof result === 'string') expect(result).toBe(expected);
      else expect(result.facts.logFile).toBe(expected);
    }
  });

  it('treats an unreadable $LogFile restart page as doubt', async () => {
    const bytes = image();
    const at = await layout(bytes);
    bytes.set(hex('52535452 1e00'), at.logFileLcn * at.clusterSize); // "RSTR" with a broken header
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/logfile');
    expect(((await outcome(bytes, true)) as UsedBlocks).facts.doubt).toBe('logfile');
  });

  for (const [head, size, expected] of [
    ['hibr', 64 * 1024, 'DIRTY/hibernated'],
    ['HIBR', 64 * 1024, 'DIRTY/hibernated'],
    ['RSTR', 64 * 1024, 'DIRTY/hibernated'],
    ['hibr', 1000, 'DIRTY/hibernated'],
    ['wake', 64 * 1024, 'not-hibernated'],
    ['\0\0\0\0', 8192, 'not-hibernated'],
  ] as const) {
    it(`hiberfil.sys starting with ${JSON.stringify(head)} (${size} bytes): ${expected}`, async () => {
      const spec: NtfsImageSpec = {
        ...BASE,
        steps: [...BASE.steps!, { op: 'file', name: 'hiberfil.sys', size, head }],
      };
      const result = await outcome(image(spec));
      if (typeof result === 'string') expect(result).toBe(expected);
      else expect(result.facts.hiberfile).toBe(expected);
    });
  }

  it('finds hiberfil.sys in an index block of a large root directory', async () => {
    const spec: NtfsImageSpec = {
      size: 32 * MiB,
      cluster: 4096,
      steps: [
        { op: 'files', prefix: 'zz', count: 300, sizes: [10] },
        { op: 'file', name: 'hiberfil.sys', size: 8192, head: 'HIBR' },
      ],
    };
    expect(await outcome(image(spec))).toBe<Outcome>('DIRTY/hibernated');
    const all = (await outcome(image(spec), true)) as UsedBlocks;
    expect(all.used.count()).toBe(all.blockCount);
    expect(all.facts.doubt).toBe('hibernated');
  });
});

describe.skipIf(!tools)('system files we refuse to guess about', () => {
  for (const [record, flags, expected] of [
    [6, 0x0001, 'UNSUPPORTED/compressed-system-file'],
    [6, 0x8000, 'UNSUPPORTED/sparse-system-file'],
    [0, 0x0001, 'UNSUPPORTED/compressed-system-file'],
    [0, 0x8000, 'UNSUPPORTED/sparse-system-file'],
  ] as const) {
    it(`${record === 0 ? '$MFT' : '$Bitmap'} with attribute flags 0x${flags.toString(16)}: ${expected}`, async () => {
      const bytes = image();
      const at = await layout(bytes);
      patchProtected(bytes, at.record(record), at.recordSize, (r, v) => {
        const a = findAttribute(r, 0x80);
        v.setUint16(a + 0x0c, flags, true);
      });
      expect(await outcome(bytes)).toBe(expected);
    });
  }
});

describe.skipIf(!tools)('corruption of real images ends in precise codes', () => {
  it('bad FILE signature of $MFT record 0', async () => {
    const bytes = image();
    const at = await layout(bytes);
    bytes[at.record(0)] = 0x47;
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/bad-magic');
  });

  it("torn write in $Bitmap's record and in $Volume's record (fixup)", async () => {
    for (const n of [6, 3, 5]) {
      const bytes = image();
      const at = await layout(bytes);
      bytes[at.record(n) + 1022] = bytes[at.record(n) + 1022]! ^ 0x55;
      expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/fixup');
    }
  });

  it('attribute length zero or past the record', async () => {
    for (const length of [0, 0x7f8]) {
      const bytes = image();
      const at = await layout(bytes);
      patchProtected(bytes, at.record(6), at.recordSize, (r, v) =>
        v.setUint32(findAttribute(r, 0x80) + 4, length, true),
      );
      expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/length-mismatch');
    }
  });

  it('$Bitmap runlist pointing outside the volume', async () => {
    const bytes = image();
    const at = await layout(bytes);
    patchProtected(bytes, at.record(6), at.recordSize, (r, v) => {
      const a = findAttribute(r, 0x80);
      const mp = a + v.getUint16(a + 0x20, true);
      const header = r[mp]!;
      // Make the top byte of the first LCN field 0x7f: a huge positive cluster number.
      r[mp + (header & 0x0f) + (header >> 4)] = 0x7f;
    });
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/run-outside-volume');
  });

  it('$MFT runlist shorter than its data size', async () => {
    const bytes = image();
    const at = await layout(bytes);
    patchProtected(bytes, at.record(0), at.recordSize, (r, v) => {
      const a = findAttribute(r, 0x80);
      // data_size and initialized_size far beyond what the runs map.
      v.setBigUint64(a + 0x28, 1n << 40n, true);
      v.setBigUint64(a + 0x30, 1n << 40n, true);
      v.setBigUint64(a + 0x38, 1n << 40n, true);
    });
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/bad-runlist');
  });

  it('attribute list naming a record of another file, and a loop between two records', async () => {
    const bytes = image();
    const at = await layout(bytes);
    patchProtected(bytes, at.record(6), at.recordSize, (r) =>
      insertAttribute(r, residentAttributeList(listEntry(0x80, 0, 9))),
    );
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/attribute-list');

    const loop = image();
    patchProtected(loop, at.record(6), at.recordSize, (r) =>
      insertAttribute(r, residentAttributeList(listEntry(0x80, 0, 7))),
    );
    // Record 7 claims record 6 as its base and lists record 6 back: a loop.
    patchProtected(loop, at.record(7), at.recordSize, (r, v) => {
      v.setBigUint64(0x20, 6n, true);
      insertAttribute(r, residentAttributeList(listEntry(0x80, 0, 6)));
    });
    expect(await outcome(loop)).toBe<Outcome>('CORRUPT/attribute-list-loop');
  });

  it('$MFT extension record that lies beyond the mapped part of $MFT (chicken-and-egg)', async () => {
    const bytes = image();
    const at = await layout(bytes);
    const vol = await NtfsVolume.open(memorySource(bytes));
    const end = vol.mftRuns.reduce((n, r) => n + r.length, 0);
    patchProtected(bytes, at.record(0), at.recordSize, (r) =>
      insertAttribute(r, residentAttributeList(listEntry(0x80, end, 1_000_000))),
    );
    expect(await outcome(bytes)).toBe<Outcome>('CORRUPT/mft-extension-unreachable');
    const gap = image();
    patchProtected(gap, at.record(0), at.recordSize, (r) =>
      insertAttribute(r, residentAttributeList(listEntry(0x80, end + 5, 20))),
    );
    expect(await outcome(gap)).toBe<Outcome>('CORRUPT/bad-vcn');
  });

  it('truncated sources: the boot sector promises more clusters than the source holds', async () => {
    const bytes = image();
    for (const cut of [0, 100, 512, 4096, 1 << 20, bytes.length - 4097, bytes.length - 4096 - 1]) {
      expect(await outcome(bytes.subarray(0, cut))).toBe<Outcome>('CORRUPT/truncated');
    }
    // Ending right after the last cluster loses only the backup boot sector: a warning.
    const noBackup = (await outcome(bytes.subarray(0, bytes.length - 4096))) as UsedBlocks;
    expect(noBackup.tail.length).toBe(0);
    expect(noBackup.warnings.map((w) => w.code)).toEqual(['backup-boot-sector-missing']);
  });

  it('bytes after the volume end are kept in the tail, with a warning', async () => {
    const bytes = image();
    const bigger = new Uint8Array(bytes.length + 3 * MiB);
    bigger.set(bytes);
    const result = (await outcome(bigger)) as UsedBlocks;
    expect(result.tail).toMatchObject({
      offset: bytes.length - 4096,
      length: 4096 + 3 * MiB,
      used: true,
    });
    expect(result.warnings.map((w) => w.code)).toEqual(['tail-after-filesystem']);
    const bad = bytes.slice();
    bad[bytes.length - 512 + 3] = 0; // backup boot sector OEM id
    expect(((await outcome(bad)) as UsedBlocks).warnings.map((w) => w.code)).toEqual([
      'backup-boot-sector-invalid',
    ]);
  });

  it('a read failure mid-scan is an IO error even with assumeUsedOnDoubt', async () => {
    const bytes = image();
    const inner = memorySource(bytes);
    let reads = 0;
    const flaky: BlockSource = {
      size: inner.size,
      async read(offset, dst) {
        if (++reads > 6)
          throw new IoError('simulated bad sector', { offset, reason: 'read-failed' });
        await inner.read(offset, dst);
      },
    };
    await expect(ntfsDriver.usedBlocks(flaky, { assumeUsedOnDoubt: true })).rejects.toMatchObject({
      code: 'IO',
    });
  });

  it('random edits inside valid-fixup system records end in a result or a typed error', async () => {
    const clean = image();
    const at = await layout(clean);
    let seed = 12345;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const seen = new Set<string>();
    for (let k = 0; k < 250; k++) {
      const bytes = clean.slice();
      const n = Math.floor(next() * 12);
      patchProtected(bytes, at.record(n), at.recordSize, (r) => {
        for (let p = 0, m = 1 + Math.floor(next() * 4); p < m; p++) {
          // Mostly the header and the first attributes, where the counts and offsets live.
          const off = Math.floor(next() * (next() < 0.7 ? 0x180 : at.recordSize - 2));
          if (off % 512 >= 510 || (off >= 4 && off < 8) || (off >= 0x30 && off < 0x36)) continue; // keep the fixups valid
          r[off] = next() < 0.3 ? 0xff : Math.floor(next() * 256);
        }
      });
      const result = await outcome(bytes);
      if (typeof result === 'string') {
        expect(result).toMatch(/^(CORRUPT|UNSUPPORTED|DIRTY)\//);
        seen.add(result);
      } else {
        expect(result.used.length).toBe(result.blockCount);
      }
    }
    // The edits reach past the fixups into the attribute and runlist checks.
    expect(seen.size).toBeGreaterThan(5);
  });

  it('agrees with ntfs-3g on the unpatched base image', async () => {
    const path = buildNtfsImage(BASE);
    const result = await ntfsDriver.usedBlocks(memorySource(image()));
    expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
    expect(result.facts.label).toBe('state');
  });
});
