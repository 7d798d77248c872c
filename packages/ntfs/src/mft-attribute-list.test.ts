/**
 * A $MFT whose $DATA continues in an extension record reached through $ATTRIBUTE_LIST.
 *
 * ntfs-3g's tools do not fragment $MFT that far on small volumes, so the test rewrites a real
 * mkntfs image the way Windows lays out such a $MFT: record 0 keeps $DATA VCNs 0..3 (records
 * 0–15) and gains an $ATTRIBUTE_LIST; record 15 becomes an extension record holding the rest of
 * the runlist. ntfs-3g reading the rewritten image is the oracle that the layout is valid.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memorySource } from '@diskube/core';
import { requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { align8, attributesOf, dataExtent, slice, writeRecord } from './hex.test-support.js';
import {
  buildNtfsImage,
  NTFS_TOOLS,
  type NtfsImageSpec,
  ntfs3gBitmap,
} from './images.test-support.js';
import { applyFixups } from './mft-record.js';
import { NtfsVolume } from './volume.js';

const tools = requireTools(NTFS_TOOLS, 'ntfs image tests');

const SPEC: NtfsImageSpec = {
  size: 24 << 20,
  cluster: 4096,
  steps: [{ op: 'files', prefix: 'f', count: 400, sizes: [50, 5000] }],
};

/** Rewrite $MFT so that $DATA VCNs ≥ `split` live in extension record `ext`. */
async function splitMft(image: Uint8Array, split: number, ext: number): Promise<void> {
  const vol = await NtfsVolume.open(memorySource(image));
  const { clusterSize: cs, mftRecordSize: rs, mftMirrLcn } = vol.boot;
  const runs = vol.mftRuns;
  const total = runs.reduce((n, r) => n + r.length, 0);
  expect(total).toBeGreaterThan(split);
  const at0 = runs[0]!.lcn * cs;
  expect(runs[0]!.length * cs).toBeGreaterThanOrEqual((ext + 1) * rs);

  const rec0 = image.slice(at0, at0 + rs);
  applyFixups(rec0, 'record 0', at0);
  const h0 = new DataView(rec0.buffer);
  const seq0 = h0.getUint16(0x10, true);
  const nextInstance = h0.getUint16(0x28, true);
  const attrs = attributesOf(rec0);
  const data = attrs.find((a) => a.type === 0x80)!;
  const head = dataExtent(data.bytes, 0, split - 1, slice(runs, 0, split), data.instance, true);

  // The attribute list: one entry per attribute extent, sorted by type then VCN.
  const listInstance = nextInstance;
  const extInstance = 0;
  const seqExt = ext;
  const entries: { type: number; vcn: number; record: number; seq: number; instance: number }[] = [
    ...attrs.map((a) => ({ type: a.type, vcn: 0, record: 0, seq: seq0, instance: a.instance })),
    { type: 0x80, vcn: split, record: ext, seq: seqExt, instance: extInstance },
  ];
  entries.push({ type: 0x20, vcn: 0, record: 0, seq: seq0, instance: listInstance });
  entries.sort((a, b) => a.type - b.type || a.vcn - b.vcn);
  const value = new Uint8Array(entries.length * 0x20);
  const lv = new DataView(value.buffer);
  entries.forEach((e, i) => {
    const o = i * 0x20;
    lv.setUint32(o, e.type, true);
    lv.setUint16(o + 4, 0x20, true);
    value[o + 7] = 0x1a;
    lv.setBigUint64(o + 8, BigInt(e.vcn), true);
    lv.setBigUint64(o + 0x10, (BigInt(e.seq) << 48n) | BigInt(e.record), true);
    lv.setUint16(o + 0x18, e.instance, true);
  });
  const list = new Uint8Array(align8(0x18 + value.length));
  const av = new DataView(list.buffer);
  av.setUint32(0, 0x20, true);
  av.setUint32(4, list.length, true);
  av.setUint16(0x0a, 0x18, true);
  av.setUint16(0x0e, listInstance, true);
  av.setUint32(0x10, value.length, true);
  av.setUint16(0x14, 0x18, true);
  list.set(value, 0x18);

  const ordered = [
    ...attrs.filter((a) => a.type < 0x20).map((a) => a.bytes),
    list,
    ...attrs.filter((a) => a.type > 0x20).map((a) => (a === data ? head : a.bytes)),
  ];
  h0.setUint16(0x28, nextInstance + 1, true);
  const new0 = writeRecord(rec0, ordered, rs);
  image.set(new0, at0);
  image.set(new0, mftMirrLcn * cs); // $MFTMirr holds a copy of records 0–3

  // Extension record: base reference = record 0, one $DATA extent for VCNs split..total−1.
  const extHeader = rec0.slice(0, 0x38);
  const ev = new DataView(extHeader.buffer);
  ev.setUint16(0x10, seqExt, true);
  ev.setUint16(0x12, 0, true);
  ev.setUint16(0x16, 0x0001, true);
  ev.setBigUint64(0x20, (BigInt(seq0) << 48n) | 0n, true);
  ev.setUint16(0x28, 1, true);
  ev.setUint32(0x2c, ext, true);
  const tail = dataExtent(
    data.bytes,
    split,
    total - 1,
    slice(runs, split, total),
    extInstance,
    false,
  );
  image.set(writeRecord(extHeader, [tail], rs), at0 + ext * rs);
}

describe.skipIf(!tools)('$MFT continued through $ATTRIBUTE_LIST', () => {
  it('reads the extension record through the part of $MFT already mapped, and agrees with ntfs-3g', async () => {
    const image = new Uint8Array(readFileSync(buildNtfsImage(SPEC)));
    const before = await ntfsDriver.usedBlocks(memorySource(image));
    await splitMft(image, 4, 15);

    const dir = mkdtempSync(join(tmpdir(), 'ntfs-attrlist-'));
    try {
      const path = join(dir, 'split.img');
      writeFileSync(path, image);
      // ntfs-3g sees the attribute list and still reads $Bitmap (through the split $MFT).
      expect(execFileSync('ntfsinfo', ['-f', '-i', '0', path], { encoding: 'utf8' })).toContain(
        '$ATTRIBUTE_LIST',
      );
      const result = await ntfsDriver.usedBlocks(memorySource(image));
      expect(result.facts.mftExtensionRecords).toBe(1);
      expect(result.facts.mftRecords).toBe(before.facts.mftRecords);
      expect(result.used.equals(ntfs3gBitmap(path, result.blockCount))).toBe(true);
      expect(result.used.equals(before.used)).toBe(true);
      // A file in a record beyond VCN 3 is reached through the extension's runs.
      expect(execFileSync('ntfsls', ['-f', path], { encoding: 'utf8' })).toContain('f399');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses when the extension record itself lies in the unmapped part', async () => {
    const image = new Uint8Array(readFileSync(buildNtfsImage(SPEC)));
    // Records 0–3 mapped by record 0 (VCN 0), extension placed in record 15 (VCN 3).
    await splitMft(image, 1, 15);
    await expect(ntfsDriver.usedBlocks(memorySource(image))).rejects.toMatchObject({
      code: 'CORRUPT',
      reason: 'mft-extension-unreachable',
    });
  });
});
