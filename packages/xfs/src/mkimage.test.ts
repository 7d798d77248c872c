import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasErrorCode } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { bitmapOfRanges, bitmapDifferences as differences } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import {
  buildAndVerify,
  partcloneDomain,
  requireTools,
  scratchDir,
} from '@diskube/mkimage/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xfsDriver } from './driver.js';
import { repairCheck, xfsDbView } from './images.test-support.js';

// XFS through the mkimage DSL (apps/mkimage/src/fs/xfs.ts): images built from readable specs,
// checked by xfs_repair -n and by reading every manifest file back with xfs_db, then compared
// with xfsprogs and partclone like the feature matrix.

const CACHE = join(tmpdir(), 'diskube-xfs-dsl');
const CONTENT = `
    file /d/f0 300K random seed=1
    file /d/f1 2M random seed=2
    file /d/f2 1200K random seed=3
    files /many 120 small
    append /d/f0 50K random seed=4
    overwrite /d/f2 4096 8K random seed=5
    truncate /d/f2 100K
    delete /d/f1`;

const tools = requireTools(['mkfs.xfs', 'xfs_db', 'partclone.xfs'], 'xfs DSL tests');

describe.runIf(tools)('xfs images from the mkimage DSL', () => {
  let work: string;
  beforeAll(async () => {
    work = await scratchDir();
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  for (const [name, fs] of [
    ['v5, 1 KiB blocks', 'xfs block=1K'],
    ['v4', 'xfs metadata=crc=0'],
    ['rmapbt, 4 KiB sectors, 5 AGs', 'xfs sector=4K metadata=rmapbt=1 agcount=5'],
  ] as const) {
    it(`${name}: fsck clean, files intact, used map equals xfsprogs + AGFL`, async () => {
      const spec = `disk 96M\n  filesystem ${fs} label=dsl\n    prefill random seed=9${CONTENT}\n`;
      const { image, manifest } = await buildAndVerify(spec, CACHE, work);
      expect(manifest.partitions[0]!.files.length).toBe(122);
      const source = await openFileSource(image);
      const result = await xfsDriver.usedBlocks(source).finally(() => source.close());
      expect(result.facts.label).toBe('dsl');
      const db = xfsDbView(image);
      expect(differences(result.used, db.used.clone().or(db.agfl))).toEqual({
        missing: [],
        extra: [],
      });
      const pc = bitmapOfRanges(
        await partcloneDomain('xfs', image),
        result.blockSize,
        result.blockCount,
      );
      expect(differences(result.used, pc.clone().or(db.agfl))).toEqual({ missing: [], extra: [] });
    });
  }

  it('an XFS partition of a GPT disk beside ext4 builds and verifies', async () => {
    const spec = `disk 200M gpt\n  partition 120M xfs\n    file /root/a 1M random seed=1\n    files /etc 50 small\n  partition rest ext4\n    file /x 10K random seed=2\n`;
    const { manifest } = await buildAndVerify(spec, CACHE, work);
    expect(manifest.partitions.map((p) => p.fs)).toEqual(['xfs', 'ext4']);
  });

  it('`dirty` leaves a log that needs recovery: DIRTY here, refused by xfs_repair -n', async () => {
    const { image } = await buildImage(
      'disk 64M\n  filesystem xfs\n    file /a 10K random seed=1\n    dirty\n',
      { cacheDir: CACHE },
    );
    const source = await openFileSource(image);
    const error = await xfsDriver.usedBlocks(source).then(
      () => undefined,
      (e: unknown) => e,
    );
    await source.close();
    expect(hasErrorCode(error, 'DIRTY') && error.reason).toBe('log-dirty');
    expect(repairCheck(image).status).not.toBe(0);
  });
});
