/**
 * Evidence against $Bitmap, on DSL-built volumes patched byte by byte: the free-of-cost check of
 * the system files' clusters, and the `crossCheck` walk of every MFT record, with ntfs-3g
 * (`ntfscat`, `ntfscluster`) and partclone as oracles.
 */
import { Bitmap } from '@diskube/bitmap';
import { DiskubeError, memorySource, type UsedBlocks } from '@diskube/core';
import { bitmapOfRanges } from '@diskube/core/test';
import { partcloneDomain, requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { crossCheckWalk } from './cross-check.js';
import { ntfsDriver } from './driver.js';
import {
  attributesOf,
  dataExtent,
  type Outcome,
  patchProtected,
  writeRecord,
} from './hex.test-support.js';
import { NTFS_TOOLS, ntfs3gBitmap } from './images.test-support.js';
import { applyFixups } from './mft-record.js';
import {
  clearBitmapBits,
  dslVolume,
  ntfsclusterOwner,
  ntfsclusterReferenced,
  recordOf,
  recordOffset,
  recordRuns,
  zeroBitmap,
} from './patch.test-support.js';
import { NtfsVolume } from './volume.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');

// A contiguous file, 300 small files (a directory with an index allocation), and a file in 1500
// fragments whose runlist spills into extension records (ntfs-3g: "an extent of inode …").
const SPEC = `
disk 48M
  filesystem ntfs cluster=4K label=xcheck
    file /data/blob 2M random seed=1
    files /docs 300 small
    file /data/frag 6000K random seed=2 fragments=1500
`;

async function outcome(image: Uint8Array, crossCheck = false): Promise<Outcome | UsedBlocks> {
  try {
    return await ntfsDriver.usedBlocks(memorySource(image), { crossCheck });
  } catch (error) {
    if (!DiskubeError.isInstance(error)) throw error;
    return `${error.code}/${error.reason}` as Outcome;
  }
}

/** The doubt policy's other branch: every cluster used, one `assumed-used` warning. */
async function expectAllUsed(image: Uint8Array, reason: string, crossCheck = false) {
  const result = await ntfsDriver.usedBlocks(memorySource(image), {
    assumeUsedOnDoubt: true,
    crossCheck,
  });
  expect(result.used.count()).toBe(result.blockCount);
  expect(result.warnings.map((w) => [w.code, w.reason])).toEqual([['assumed-used', reason]]);
  expect(result.crossCheck).toBeUndefined();
}

describe.skipIf(!tools)('evidence against $Bitmap', () => {
  it('unpatched: the walk references exactly the clusters of $Bitmap, ntfs-3g and partclone', async () => {
    const { path, image } = await dslVolume(SPEC);
    const result = await ntfsDriver.usedBlocks(memorySource(image), { crossCheck: true });
    expect(result.warnings).toEqual([]);
    expect(result.crossCheck).toMatchObject({ missingBlocks: 0, missing: [] });
    expect(result.crossCheck!.objects).toBeGreaterThan(300);
    // ntfscluster --info walks every inode too; its user data + metadata is our reference count.
    expect(result.crossCheck!.referencedBlocks).toBe(ntfsclusterReferenced(path));
    expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);

    // Against an empty map the walk rebuilds the map from the records alone: it must equal
    // ntfs-3g's $Bitmap and partclone's domain log, cluster for cluster.
    const vol = await NtfsVolume.open(memorySource(image));
    const rebuilt = new Bitmap(result.blockCount);
    const walk = await crossCheckWalk(vol, rebuilt);
    expect(rebuilt.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
    expect(
      rebuilt.equals(
        bitmapOfRanges(await partcloneDomain('ntfs', path), result.blockSize, result.blockCount),
      ),
    ).toBe(true);
    expect(walk.report.missingBlocks).toBe(rebuilt.count()); // no cluster referenced twice
    expect(walk.report.missing).toHaveLength(20); // bounded
    expect(walk.warnings.at(-1)?.message).toMatch(/more referenced clusters were free/);
  });

  it('$Bitmap zeroed: CORRUPT bitmap-contradicted, or every cluster used; never "system files kept, user files dropped"', async () => {
    const { image } = await dslVolume(SPEC);
    await zeroBitmap(image);
    expect(await outcome(image)).toBe<Outcome>('CORRUPT/bitmap-contradicted');
    expect(await outcome(image, true)).toBe<Outcome>('CORRUPT/bitmap-contradicted');
    await expectAllUsed(image, 'bitmap-contradicted');
    await expectAllUsed(image, 'bitmap-contradicted', true);
  });

  it('the clusters of any system file cleared in $Bitmap: CORRUPT bitmap-contradicted', async () => {
    const { image: clean } = await dslVolume(SPEC);
    const covered: string[] = [];
    for (let record = 0; record < 16; record++) {
      for (const { type, name, runs } of await recordRuns(clean, record)) {
        const run = runs[0];
        if (!run) continue;
        const image = clean.slice();
        // The last cluster of the first run: one cluster is enough evidence.
        await clearBitmapBits(image, run.lcn + run.length - 1, 1);
        expect(
          await outcome(image),
          `record ${record} 0x${type.toString(16)} ${name}`,
        ).toBe<Outcome>('CORRUPT/bitmap-contradicted');
        covered.push(`${record}:0x${type.toString(16)}${name ? `:${name}` : ''}`);
      }
    }
    // mkntfs makes these non-resident: $MFT ($DATA, $BITMAP), $MFTMirr, $LogFile, $AttrDef, the
    // root index, $Bitmap, $Boot, $Secure:$SDS, $UpCase.
    expect(covered).toEqual(
      expect.arrayContaining([
        '0:0x80',
        '0:0xb0',
        '1:0x80',
        '2:0x80',
        '4:0x80',
        '5:0xa0:$I30',
        '6:0x80',
        '7:0x80',
        '9:0x80:$SDS',
        '10:0x80',
      ]),
    );
    const image = clean.slice();
    const [mft] = await recordRuns(clean, 0);
    await clearBitmapBits(image, mft!.runs[0]!.lcn, mft!.runs[0]!.length);
    await expectAllUsed(image, 'bitmap-contradicted');
  });

  it("a user file's clusters cleared in $Bitmap: dropped without crossCheck, found, kept and named with it", async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const before = await ntfsDriver.usedBlocks(memorySource(clean));
    const blob = recordOf(path, '/data', 'blob');
    const [data] = (await recordRuns(clean, blob)).filter((a) => a.type === 0x80);
    const { lcn, length } = data!.runs[0]!;
    expect(length).toBe((2 << 20) / 4096);
    expect(ntfsclusterOwner(path, lcn + 7)).toBe(`Inode ${blob} /data/blob/$DATA`);
    const image = clean.slice();
    await clearBitmapBits(image, lcn + 5, 100);

    // Without crossCheck nothing cheap contradicts the map: the 100 clusters are not kept.
    // This is the documented limit of trusting $Bitmap; crossCheck is the answer.
    const plain = await ntfsDriver.usedBlocks(memorySource(image));
    expect(plain.warnings).toEqual([]);
    expect(plain.used.equals(before.used.clone().clearRange(lcn + 5, 100))).toBe(true);

    const checked = await ntfsDriver.usedBlocks(memorySource(image), { crossCheck: true });
    expect(checked.used.equals(before.used)).toBe(true);
    expect(checked.crossCheck).toMatchObject({
      missingBlocks: 100,
      missing: [{ owner: `record ${blob} blob`, block: lcn + 5, count: 100 }],
    });
    expect(checked.warnings).toEqual([
      expect.objectContaining({ code: 'referenced-free', offset: (lcn + 5) * 4096 }),
    ]);
    expect(checked.warnings[0]!.message).toContain(`record ${blob} blob`);
  });

  it('clusters referenced from an extension record are found and named after the base record', async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const frag = recordOf(path, '/data', 'frag');
    const vol = await NtfsVolume.open(memorySource(clean));
    const file = await vol.openFile(frag);
    expect(file.extensionRecords.length).toBeGreaterThan(0);
    const extension = file.extensionRecords.at(-1)!;
    const [extent] = (await recordRuns(clean, extension)).filter((a) => a.type === 0x80);
    const run = extent!.runs.at(-1)!;
    expect(ntfsclusterOwner(path, run.lcn)).toBe(`Inode ${frag} /data/frag/$DATA`);
    const image = clean.slice();
    await clearBitmapBits(image, run.lcn, run.length);
    const checked = await ntfsDriver.usedBlocks(memorySource(image), { crossCheck: true });
    expect(checked.crossCheck!.missing).toEqual([
      {
        owner: `record ${frag} frag (extension record ${extension})`,
        block: run.lcn,
        count: run.length,
      },
    ]);
    const before = await ntfsDriver.usedBlocks(memorySource(clean));
    expect(checked.used.equals(before.used)).toBe(true);
  });

  it('an extension record whose in-use flag is clear is still walked: the attribute list names it', async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const frag = recordOf(path, '/data', 'frag');
    const vol = await NtfsVolume.open(memorySource(clean));
    const extension = (await vol.openFile(frag)).extensionRecords.at(-1)!;
    expect(extension).toBeGreaterThan(frag); // reached after its base record lists it
    const [extent] = (await recordRuns(clean, extension)).filter((a) => a.type === 0x80);
    const run = extent!.runs[0]!;
    const image = clean.slice();
    const at = await recordOffset(image, extension);
    image[at + 0x16] = image[at + 0x16]! & ~0x01; // MFT_RECORD_IN_USE off; no fixup touched
    await clearBitmapBits(image, run.lcn, run.length);
    const checked = await ntfsDriver.usedBlocks(memorySource(image), { crossCheck: true });
    expect(checked.crossCheck!.missingBlocks).toBe(run.length);
    expect(checked.crossCheck!.missing[0]!.owner).toMatch(
      new RegExp(`^record ${frag} .*\\(extension record ${extension}\\)$`),
    );
  });

  it('a free extension record numbered below its base is walked when the base lists it', async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const frag = recordOf(path, '/data', 'frag');
    const vol = await NtfsVolume.open(memorySource(clean));
    const extension = (await vol.openFile(frag)).extensionRecords.at(-1)!;
    // A free record below the base, to move the extension record into (ntfs-3g numbers extension
    // records after their base; Windows takes any free record).
    let low = -1;
    for (let n = 16; n < frag && low < 0; n++) {
      const { header } = await vol.readRecord(n).catch(() => ({ header: { inUse: true } }));
      if (!header.inUse) low = n;
    }
    expect(low).toBeGreaterThan(0);
    const image = clean.slice();
    const from = await recordOffset(clean, extension);
    const to = await recordOffset(clean, low);
    image.set(clean.subarray(from, from + 1024), to);
    image[to + 0x16] = image[to + 0x16]! & ~0x01; // moved, and marked free
    image[from + 0x16] = image[from + 0x16]! & ~0x01; // the old place is free too
    // The $ATTRIBUTE_LIST of a file in 1,500 fragments is non-resident: patch its clusters. Its
    // entries naming the extension record now name \`low\`.
    const [list] = (await recordRuns(clean, frag)).filter((a) => a.type === 0x20);
    expect(list!.runs).toHaveLength(1);
    const listAt = list!.runs[0]!.lcn * 4096;
    const view = new DataView(image.buffer, listAt, list!.runs[0]!.length * 4096);
    let moved = 0;
    for (let e = 0; e + 0x1a <= view.byteLength && view.getUint32(e, true) !== 0; ) {
      if (view.getUint32(e + 0x10, true) === extension) {
        view.setUint32(e + 0x10, low, true);
        moved++;
      }
      e += view.getUint16(e + 4, true);
    }
    expect(moved).toBeGreaterThan(0);
    const [extent] = (await recordRuns(image, low)).filter((a) => a.type === 0x80);
    const run = extent!.runs[0]!;
    await clearBitmapBits(image, run.lcn, run.length);
    const checked = await ntfsDriver.usedBlocks(memorySource(image), { crossCheck: true });
    expect(checked.crossCheck!.missing[0]).toMatchObject({ block: run.lcn, count: run.length });
    expect(checked.crossCheck!.missing[0]!.owner).toMatch(
      new RegExp(`^record ${frag} .*\\(extension record ${low}\\)$`),
    );
  });

  it('an in-use record that cannot be read stops crossCheck (CORRUPT fixup); a free one is skipped', async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const blob = recordOf(path, '/data', 'blob');
    const image = clean.slice();
    const at = await recordOffset(image, blob);
    image[at + 510] = image[at + 510]! ^ 0xff; // the end of stride 0 no longer matches the USN
    // The driver does not read user records without crossCheck, so nothing notices.
    expect((await outcome(image)) as UsedBlocks).toMatchObject({ warnings: [] });
    expect(await outcome(image, true)).toBe<Outcome>('CORRUPT/fixup');
    await expectAllUsed(image, 'fixup', true);

    // A record that is free in $MFT's $BITMAP and in its own header may hold anything.
    const vol = await NtfsVolume.open(memorySource(clean));
    let free = -1;
    for (let n = 16; n < vol.mftRecordCount && free < 0; n++) {
      const { header } = await vol.readRecord(n).catch(() => ({ header: { inUse: true } }));
      if (!header.inUse) free = n;
    }
    expect(free).toBeGreaterThan(0);
    const garbage = clean.slice();
    const freeAt = await recordOffset(garbage, free);
    garbage.fill(0x5a, freeAt + 4, freeAt + vol.boot.mftRecordSize);
    const result = (await outcome(garbage, true)) as UsedBlocks;
    expect(result.crossCheck).toMatchObject({ missingBlocks: 0 });
  });

  it('random edits in user and extension records: crossCheck ends in a result that keeps every clean cluster, or CORRUPT', async () => {
    const { path, image: clean } = await dslVolume(SPEC);
    const before = await ntfsDriver.usedBlocks(memorySource(clean));
    const targets = [
      recordOf(path, '/data', 'blob'),
      recordOf(path, '/data', 'frag'),
      recordOf(path, '/', 'docs'),
      ...(
        await (await NtfsVolume.open(memorySource(clean))).openFile(recordOf(path, '/data', 'frag'))
      ).extensionRecords,
    ];
    const offsets = await Promise.all(targets.map((n) => recordOffset(clean, n)));
    let seed = 777;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const seen = new Set<string>();
    // One copy of the image, each record patched in place and restored after the case.
    const bytes = clean.slice();
    for (let k = 0; k < 150; k++) {
      const at = offsets[Math.floor(next() * offsets.length)]!;
      patchProtected(bytes, at, 1024, (r) => {
        for (let p = 0, m = 1 + Math.floor(next() * 4); p < m; p++) {
          const off = 0x38 + Math.floor(next() * (1024 - 0x3a));
          if (off % 512 >= 510) continue; // keep the fixups valid
          r[off] = next() < 0.3 ? 0xff : Math.floor(next() * 256);
        }
      });
      const result = await outcome(bytes, true);
      if (typeof result === 'string') {
        expect(result).toMatch(/^CORRUPT\//);
        seen.add(result);
      } else {
        // $Bitmap was not touched, so nothing the clean map holds may be dropped.
        expect(result.used.clone().and(before.used).equals(before.used)).toBe(true);
        expect(result.crossCheck!.missing.length).toBeLessThanOrEqual(20);
      }
      bytes.set(clean.subarray(at, at + 1024), at);
    }
    expect(seen.size).toBeGreaterThan(2);
  });

  it('runs that reference the volume over and over: CORRUPT cross-linked, in bounded work', async () => {
    const { path, image } = await dslVolume(SPEC);
    const blob = recordOf(path, '/data', 'blob');
    const at = await recordOffset(image, blob);
    const { clusterCount: n } = (await NtfsVolume.open(memorySource(image))).boot;
    const record = image.slice(at, at + 1024);
    applyFixups(record, 'test', at);
    // $DATA of /data/blob as three runs, each over the whole volume.
    const whole = [0, 1, 2].map((i) => ({ vcn: i * n, lcn: 0, length: n }));
    const attrs = attributesOf(record).map((a) =>
      a.type === 0x80 ? dataExtent(a.bytes, 0, 3 * n - 1, whole, a.instance, true) : a.bytes,
    );
    image.set(writeRecord(record, attrs, 1024), at);
    expect((await outcome(image)) as UsedBlocks).toMatchObject({ warnings: [] });
    expect(await outcome(image, true)).toBe<Outcome>('CORRUPT/cross-linked');
  });
});
