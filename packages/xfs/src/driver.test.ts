import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '@diskube/core/node';
import { bitmapOfRanges, bitmapDifferences as differences } from '@diskube/core/test';
import { partcloneDomain, requireTools } from '@diskube/mkimage/testing';
import { describe, expect, it } from 'vitest';
import { xfsDriver } from './driver.js';
import { buildXfs, xfsDbView } from './images.test-support.js';
import { M, MATRIX } from './matrix.test-support.js';

const tools = requireTools(['mkfs.xfs', 'xfs_db', 'partclone.xfs'], 'xfs oracle tests');

describe.runIf(tools)('xfs used blocks against xfsprogs and partclone', () => {
  for (const [name, recipe] of Object.entries(MATRIX)) {
    it(name, async () => {
      const path = buildXfs(recipe);
      const source = await openFileSource(path);
      const result = await xfsDriver.usedBlocks(source).finally(() => source.close());
      const db = xfsDbView(path);
      expect(result.blockCount).toBe(db.used.length);
      // xfs_db's freesp counts the AG free list as free space; diskube keeps those blocks (they
      // are in neither free-space btree). Every other block agrees exactly, both ways.
      const expected = db.used.clone().or(db.agfl);
      expect(differences(result.used, expected)).toEqual({ missing: [], extra: [] });
      expect(db.agfl.clone().andNot(db.used).count()).toBe(db.agfl.count());
      // partclone.xfs copies what xfs_db calls used (no AGFL blocks): nothing of it may be
      // missing, and the only extras are the AGFL blocks.
      const pc = bitmapOfRanges(
        await partcloneDomain('xfs', path),
        result.blockSize,
        result.blockCount,
      );
      expect(differences(result.used, pc.clone().or(db.agfl))).toEqual({ missing: [], extra: [] });
      expect(pc.clone().and(db.agfl).count()).toBe(0);
      console.log(
        `${name}: used ${result.used.count() * result.blockSize} bytes; xfs_db ${db.used.count() * result.blockSize}, partclone ${pc.count() * result.blockSize}; extra = ${db.agfl.count()} AGFL blocks`,
      );
    });
  }

  it('walks a two-level bnobt in the fragmented 1 KiB image', () => {
    const path = buildXfs(MATRIX['1 KiB blocks, fragmented free space (two-level bnobt)']!);
    const levels = [0, 1, 2, 3].map((ag) => {
      const text = execFileSync('xfs_db', ['-r', '-c', `agf ${ag}`, '-c', 'p bnolevel', path], {
        encoding: 'utf8',
      });
      return Number(/bnolevel = (\d+)/.exec(text)![1]);
    });
    expect(Math.max(...levels)).toBeGreaterThanOrEqual(2);
  });

  it('an external log: the data device map is still exact, with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diskube-xfs-extlog-'));
    try {
      const data = join(dir, 'data.img');
      const log = join(dir, 'log.img');
      execFileSync('truncate', ['-s', '64M', data]);
      execFileSync('truncate', ['-s', '16M', log]);
      execFileSync('mkfs.xfs', ['-q', '-f', '-l', `logdev=${log},size=2500b`, data], {
        env: { ...process.env, TEST_DIR: tmpdir(), TEST_DEV: '/dev/null', QA_CHECK_FS: '1' },
      });
      const source = await openFileSource(data);
      const result = await xfsDriver.usedBlocks(source).finally(() => source.close());
      expect(result.facts.log).toBe('external');
      expect(result.warnings.map((w) => w.code)).toEqual(['external-log']);
      const db = xfsDbView(data, ['-l', log]);
      expect(differences(result.used, db.used.clone().or(db.agfl))).toEqual({
        missing: [],
        extra: [],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports the tail after a filesystem smaller than its file', async () => {
    const path = buildXfs(MATRIX['short last AG (5 × 32 MiB + 20 MiB, in a larger file)']!);
    const source = await openFileSource(path);
    const result = await xfsDriver.usedBlocks(source).finally(() => source.close());
    expect(result.blockCount).toBe((180 * M) / 4096);
    expect(result.tail).toMatchObject({ offset: 180 * M, length: 76 * M, used: false });
    expect(result.warnings.map((w) => w.code)).toEqual(['tail-after-filesystem']);
    expect(result.facts.agCount).toBe(6);
  });
});
