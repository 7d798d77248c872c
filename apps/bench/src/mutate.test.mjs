import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasTool, run } from './exec.mjs';
import { extUsedBlocks, writeReference } from './ext-blocks.mjs';
import { applyStep, debugfs, fileBlocks, logText, seededBytes } from './mutate.mjs';

const TOOLS = ['mke2fs', 'debugfs', 'dumpe2fs', 'e2fsck'];
const missing = [];
for (const t of TOOLS) if (!(await hasTool(t))) missing.push(t);
if (missing.length > 0) {
  if (process.env.CI === 'true') throw new Error(`CI: missing ${missing.join(', ')}`);
  console.warn(`SKIPPING mutate tests: ${missing.join(', ')} not installed`);
}

const SPEC = `disk 32M
  filesystem ext4 block=4K
    file /data/db.bin 1M random seed=3
    file /var/log/app/requests.log 8K text
    files /home/user/docs 60 small seed=4
    file /stale 2M random seed=5
    delete /stale
`;

const SIZE = {
  bigFile: '/data/db.bin',
  bigRanges: 3,
  bigRangeBlocks: 4,
  rewrites: 5,
  deletes: 4,
  newFiles: 6,
  logBytes: 10_000,
};

describe.skipIf(missing.length > 0)('applyStep and writeReference on a real ext4', () => {
  let dir = '';
  let image = '';
  /** @type {Array<{ path: string, size: number }>} */
  let docs = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bench-test-'));
    const built = await buildImage(SPEC, { cacheDir: join(dir, 'cache') });
    image = join(dir, 'work.img');
    await copyFile(built.image, image);
    docs = (built.manifest.partitions[0]?.files ?? [])
      .filter((f) => f.path.startsWith('/home/user/docs/'))
      .map((f) => ({ path: f.path, size: f.size }));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('changes files in place, deletes and adds files, and leaves a clean filesystem', async () => {
    const [dbBefore] = await fileBlocks(image, ['/data/db.bin']);
    const before = await readFile(image);
    const list = [...docs];
    const result = await applyStep({
      image,
      step: 1,
      blockSize: 4096,
      size: SIZE,
      smallFiles: list,
      scratch: join(dir, 'scratch'),
    });
    expect(result.filesDeleted).toBe(4);
    expect(list.length).toBe(docs.length - 4);
    const gone = docs.filter((d) => !list.some((l) => l.path === d.path));
    expect(gone).toHaveLength(4);

    // The big file kept its blocks; some of them now hold other bytes.
    const [dbAfter] = await fileBlocks(image, ['/data/db.bin']);
    expect(dbAfter).toEqual(dbBefore);
    const after = await readFile(image);
    const changedDbBlocks = (dbBefore ?? []).filter(
      (b) => before.compare(after, b * 4096, (b + 1) * 4096, b * 4096, (b + 1) * 4096) !== 0,
    );
    expect(changedDbBlocks.length).toBe(12);

    // New files hold what was written; deleted ones are gone.
    const log = execFileSync('debugfs', ['-R', 'cat /var/log/app/requests.log.1', image], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(log.equals(logText(1, 10_000))).toBe(true);
    const stats = await debugfs(
      image,
      gone.map((g) => `stat "${g.path}"`),
      false,
    ).catch((e) => String(e));
    expect(String(stats)).toMatch(/File not found/);

    expect((await run('e2fsck', ['-fn', image], { allowFail: true })).code).toBe(0);
  });

  it('writes a reference equal to the image on used blocks and zero elsewhere', async () => {
    const ref = join(dir, 'ref.img');
    const r = await writeReference(image, ref);
    const { used, blockCount } = await extUsedBlocks(image);
    const a = await readFile(image);
    const b = await readFile(ref);
    expect(b.length).toBe(a.length);
    const isUsed = new Uint8Array(blockCount);
    for (const [s, n] of used) isUsed.fill(1, s, s + n);
    let data = 0;
    let staleSeen = false;
    for (let i = 0; i < blockCount; i++) {
      const ra = a.subarray(i * 4096, (i + 1) * 4096);
      const rb = b.subarray(i * 4096, (i + 1) * 4096);
      if (isUsed[i]) {
        expect(rb.equals(ra)).toBe(true);
        if (rb.some((x) => x !== 0)) data++;
      } else {
        expect(rb.every((x) => x === 0)).toBe(true);
        if (ra.some((x) => x !== 0)) staleSeen = true;
      }
    }
    // The deleted /stale left data in free blocks, which the reference must not carry.
    expect(staleSeen).toBe(true);
    expect(r.dataBytes).toBe(data * 4096);
    expect(r.usedBytes).toBe(used.reduce((n, [, len]) => n + len, 0) * 4096);
    expect(r.dataBytes).toBeLessThan(r.usedBytes);
  });
});

describe('seededBytes', () => {
  it('is deterministic per seed and differs between seeds', () => {
    expect(seededBytes('a', 64).equals(seededBytes('a', 64))).toBe(true);
    expect(seededBytes('a', 64).equals(seededBytes('b', 64))).toBe(false);
  });
});
