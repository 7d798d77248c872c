import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDigestCache } from '@diskube/format';
import { expect, it, onTestFinished } from 'vitest';
import { sweepStateDigests } from './node/backup.js';

const filesIn = async (root: string): Promise<string[]> =>
  (await readdir(root, { withFileTypes: true, recursive: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length));

it('sweeps state digest files unused for 30 days, at most once a day', async () => {
  const root = await mkdtemp(join(tmpdir(), 'diskube-state-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const cache = new StateDigestCache(root);
  for (const id of ['cd'.repeat(16), 'ef'.repeat(16)]) await (await cache.create(id)).commit();
  const keep = `/dkb-state/cd/${'cd'.repeat(16)}`;
  const old = `/dkb-state/ef/${'ef'.repeat(16)}`;
  const longAgo = new Date(Date.now() - 40 * 24 * 3600 * 1000);
  await utimes(join(root, old), longAgo, longAgo);
  await sweepStateDigests(root);
  expect((await filesIn(root)).sort()).toEqual(['/dkb-state-swept', keep]);
  await utimes(join(root, keep), longAgo, longAgo);
  await sweepStateDigests(root); // swept less than a day ago
  expect(await filesIn(root)).toContain(keep);
  await sweepStateDigests(root, Date.now() + 25 * 3600 * 1000);
  expect(await filesIn(root)).toEqual(['/dkb-state-swept']);
});
