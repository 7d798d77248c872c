import { createHash } from 'node:crypto';
import { type BlockSource, readBytes } from '@diskube/core';
import { type LvmSegment, lvmSegments, requireTools } from '@diskube/mkimage/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  fixLabelChecksum,
  fixMdaChecksum,
  metadataOf,
  type PvImage,
  source,
  ubuntuPv,
  withMetadata,
} from './images.test-support.js';
import { readPhysicalVolume } from './physical-volume.js';
import { LVM_REASONS } from './reasons.js';

const tools = requireTools(
  ['losetup', 'pvcreate', 'vgcfgrestore', 'lvs', 'mke2fs', 'mkswap'],
  'lvm image tests',
);

/** Merged, sorted ranges. */
function merge(ranges: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [o, l] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && last[0] + last[1] >= o) last[1] = Math.max(last[1], o + l - last[0]);
    else out.push([o, l]);
  }
  return out;
}

/** The PV offset of LV byte `at`, from LVM's own segment report (chunk → stripe → row). */
function oracleOffset(segments: LvmSegment[], at: number): number {
  const s = segments.find((x) => x.start <= at && at < x.start + x.length)!;
  const within = at - s.start;
  if (s.areas.length === 1) return s.areas[0]! + within;
  const chunk = Math.floor(within / s.stripeSize);
  return (
    s.areas[chunk % s.areas.length]! +
    Math.floor(chunk / s.areas.length) * s.stripeSize +
    (within % s.stripeSize)
  );
}

describe.skipIf(!tools)('readPhysicalVolume on a real PV', { timeout: 300_000 }, () => {
  let pv: PvImage;
  let oracle: LvmSegment[];
  beforeAll(async () => {
    pv = await ubuntuPv();
    oracle = await lvmSegments(pv.image, pv.partition);
  });

  it('finds the label, the VG and every LV with its segments as LVM reports them', async () => {
    const read = (await readPhysicalVolume(source(pv.bytes)))!;
    expect(read.label).toMatchObject({ sector: 1, uuid: pv.partition.options.pv_uuid });
    expect(read.vg.name).toBe('ubuntu-vg');
    expect(read.volumes.map((v) => v.name).sort()).toEqual(
      [...new Set(oracle.map((s) => s.lv))].sort(),
    );
    for (const lv of read.volumes) {
      const mine = lv.entry.segments.map((s) => ({
        start: s.startExtent * read.vg.extentSize,
        length: s.extentCount * read.vg.extentSize,
        stripeSize: s.stripeSize,
        areas: s.stripes.map((x) => read.pv.peStart + x.extent * read.vg.extentSize),
      }));
      const theirs = oracle.filter((s) => s.lv === lv.name).map(({ lv: _, type: __, ...s }) => s);
      expect(mine, lv.name).toEqual(theirs.sort((a, b) => a.start - b.start));
      expect(lv.source, lv.name).not.toBeNull();
    }
    expect(read.warnings).toEqual([]);
  });

  it('reads each LV through its segments byte for byte as LVM maps it', async () => {
    const read = (await readPhysicalVolume(source(pv.bytes)))!;
    for (const lv of read.volumes) {
      const segments = oracle.filter((s) => s.lv === lv.name);
      const mine = await readBytes(lv.source!, 0, lv.size);
      const theirs = new Uint8Array(lv.size);
      for (let at = 0; at < lv.size; at += 4096) {
        const o = oracleOffset(segments, at);
        theirs.set(pv.bytes.subarray(o, o + 4096), at);
      }
      const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
      expect(hash(mine), lv.name).toBe(hash(theirs));
      // Ranges map back onto the PV where LVM puts them, across chunk and segment borders.
      for (const [offset, length] of [
        [0, lv.size],
        [61440, 12288],
        [lv.size - 8192, 8192],
        [8 * 2 ** 20 - 4096, 8192],
      ] as Array<[number, number]>) {
        if (offset + length > lv.size) continue;
        const expected: Array<[number, number]> = [];
        for (let at = offset; at < offset + length; at += 4096)
          expected.push([oracleOffset(segments, at), 4096]);
        expect(merge(lv.toPv([[offset, length]])), `${lv.name} ${offset}`).toEqual(merge(expected));
      }
    }
  });

  it('keeps the label, metadata area and the bytes outside the extents; counts free extents', async () => {
    const read = (await readPhysicalVolume(source(pv.bytes)))!;
    const extentsEnd = read.pv.peStart + read.pv.peCount * read.vg.extentSize;
    expect(merge(read.metadata)).toEqual(
      merge([
        [0, read.pv.peStart],
        [extentsEnd, pv.bytes.length - extentsEnd],
      ]),
    );
    const allocated = oracle.reduce((n, s) => n + s.length, 0) / read.vg.extentSize;
    expect(read.freeExtents).toBe(read.pv.peCount - allocated);
    expect(read.freeExtents).toBeGreaterThan(0);
  });

  describe('corruption', () => {
    const expectError = async (bytes: Uint8Array, code: string, reason: string) => {
      await expect(readPhysicalVolume(source(bytes))).rejects.toMatchObject({ code, reason });
    };
    const patch = (at: number, value: number, fix?: 'label' | 'mda') => {
      const b = pv.bytes.slice();
      b[at] = value;
      if (fix === 'label') fixLabelChecksum(b);
      if (fix === 'mda') fixMdaChecksum(b);
      return b;
    };

    it('a PV without LABELONE is no PV', async () => {
      expect(await readPhysicalVolume(source(patch(512, 0)))).toBeNull();
    });
    it('label: checksum, sector number, offset, type and area lists', async () => {
      await expectError(patch(512 + 0x30, pv.bytes[512 + 0x30]! ^ 1), 'CORRUPT', 'checksum');
      await expectError(patch(512 + 0x08, 3, 'label'), 'CORRUPT', 'bad-label-sector');
      // offset_xl 0x220: past the sector.
      await expectError(patch(512 + 0x15, 0x02, 'label'), 'CORRUPT', 'bad-label-offset');
      await expectError(patch(512 + 0x18, 0x41, 'label'), 'UNSUPPORTED', 'unknown-format');
      // The data area's offset (pv_header + 0x28) past the end of the PV.
      await expectError(patch(512 + 0x20 + 0x28 + 6, 0x10, 'label'), 'CORRUPT', 'bad-locations');
    });
    it('metadata area header: checksum, magic, version, location', async () => {
      await expectError(patch(4096 + 0x40, 1), 'CORRUPT', 'checksum');
      await expectError(patch(4096 + 0x05, 0x41, 'mda'), 'CORRUPT', 'bad-mda-magic');
      await expectError(patch(4096 + 0x14, 2, 'mda'), 'CORRUPT', 'bad-mda-version');
      // start 0x2000 where the locator says 0x1000.
      await expectError(patch(4096 + 0x19, 0x20, 'mda'), 'CORRUPT', 'bad-mda-location');
      await expectError(patch(4096 + 0x35, 0x7f, 'mda'), 'CORRUPT', 'bad-mda-location');
    });
    it('metadata text: checksum, syntax, this PV missing, overlapping LVs, pe_start', async () => {
      const { textAt, text } = metadataOf(pv.bytes);
      await expectError(
        patch(textAt + 10, pv.bytes[textAt + 10]! ^ 0x20),
        'CORRUPT',
        'metadata-checksum',
      );
      await expectError(
        withMetadata(pv.bytes, text.replace(/seqno = \d+/, 'seqno = ')),
        'CORRUPT',
        'bad-syntax',
      );
      await expectError(
        withMetadata(pv.bytes, text.replace(/(pv0 \{\s*id = ")./, '$1X')),
        'CORRUPT',
        'pv-not-in-vg',
      );
      await expectError(
        withMetadata(pv.bytes, text.replace(/"pv0", 10\b/, '"pv0", 0')),
        'CORRUPT',
        'overlap',
      );
      await expectError(
        withMetadata(pv.bytes, text.replace('pe_start = 2048', 'pe_start = 4096')),
        'CORRUPT',
        'bad-extent-geometry',
      );
      await expectError(
        withMetadata(pv.bytes, text.replace(/pe_count = \d+/, 'pe_count = 9999')),
        'CORRUPT',
        'out-of-range',
      );
    });
    it('a PV whose metadata area holds no committed metadata is UNSUPPORTED', async () => {
      const b = pv.bytes.slice();
      b.fill(0, 4096 + 0x28, 4096 + 0x40);
      fixMdaChecksum(b);
      await expectError(b, 'UNSUPPORTED', 'no-metadata');
    });
    it('a PV cut short is CORRUPT, not a read error', async () => {
      await expectError(pv.bytes.slice(0, 40 * 2 ** 20), 'CORRUPT', 'out-of-range');
    });

    it('every single-byte change of the label sector and metadata area header is null, a typed error or harmless', async () => {
      const reasons = new Set<string>(LVM_REASONS);
      for (const at of [...Array(512).keys()]
        .map((i) => 512 + i)
        .concat([...Array(512).keys()].map((i) => 4096 + i))) {
        // The PV with one byte flipped, without copying its 100 MiB for each of 1024 bytes.
        const flipped: BlockSource = {
          size: pv.bytes.length,
          async read(offset, dst) {
            dst.set(pv.bytes.subarray(offset, offset + dst.length));
            if (at >= offset && at < offset + dst.length) dst[at - offset]! ^= 0xff;
          },
        };
        try {
          await readPhysicalVolume(flipped);
        } catch (error) {
          const e = error as { code?: string; reason?: string; offset?: number };
          expect(['CORRUPT', 'UNSUPPORTED'], `byte ${at}`).toContain(e.code);
          expect(reasons.has(e.reason!), `byte ${at}: ${e.reason}`).toBe(true);
          expect(typeof e.offset, `byte ${at}`).toBe('number');
        }
      }
    });
  });

  describe('LVs kept whole', () => {
    it('a thin pool and everything it is built on, with a warning naming the LV', async () => {
      const { text } = metadataOf(pv.bytes);
      // root becomes a thin pool's data LV: the pool references it, so root is not mapped.
      const thin = text.replace(
        'logical_volumes {',
        'logical_volumes {\npool {\nid = "pool-id"\nstatus = ["READ", "WRITE"]\nflags = []\nsegment_count = 1\nsegment1 {\nstart_extent = 0\nextent_count = 10\ntype = "thin-pool"\nmetadata = "swap"\npool = "root"\ntransaction_id = 0\n}\n}\n',
      );
      const read = (await readPhysicalVolume(source(withMetadata(pv.bytes, thin))))!;
      const root = read.volumes.find((v) => v.name === 'root')!;
      expect(root.source).toBeNull();
      expect(root.keptWhole).toMatchObject({ code: 'lv-kept-whole' });
      expect(root.keptWhole!.message).toContain('pool');
      expect(root.toPv([[0, 4096]])).toEqual(root.pvRanges);
      expect(read.volumes.find((v) => v.name === 'swap')!.source).toBeNull();
      expect(read.volumes.find((v) => v.name === 'home')!.source).not.toBeNull();
      expect(read.warnings.filter((w) => w.code === 'lv-kept-whole').length).toBe(3);
    });
    it('an LV with a stripe on another PV, kept whole here with lv-outside-disk', async () => {
      const { text } = metadataOf(pv.bytes);
      const two = text
        .replace(
          'physical_volumes {',
          'physical_volumes {\npv1 {\nid = "other-pv"\nstatus = ["ALLOCATABLE"]\nflags = []\ndev_size = 204800\npe_start = 2048\npe_count = 20\n}\n',
        )
        .replace(
          /stripes = \[\n"pv0", (\d+),\n"pv0", (\d+)\n\]/,
          'stripes = [\n"pv0", $1,\n"pv1", 0\n]',
        );
      const read = (await readPhysicalVolume(source(withMetadata(pv.bytes, two))))!;
      const data = read.volumes.find((v) => v.name === 'data')!;
      expect(data.source).toBeNull();
      expect(data.keptWhole).toMatchObject({ code: 'lv-outside-disk' });
      expect(data.pvRanges).toHaveLength(1);
    });
  });
});
