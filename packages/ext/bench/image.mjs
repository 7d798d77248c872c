// The benchmark image, shared by src/driver.bench.ts and bench/peak.mjs: a 1 TiB sparse ext4
// (4 KiB blocks, 8192 groups, flex_bg 16, mostly BLOCK_UNINIT) holding a little data.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '@diskube/mkimage';

export const BENCH_SPEC = `disk 1T
  filesystem ext4 block=4K
    file /data/blob 8M random seed=1
    files /etc 200 small
`;

/** Path of the (cached) benchmark image. */
export async function benchImage() {
  const { image } = await buildImage(BENCH_SPEC, {
    cacheDir: join(tmpdir(), 'diskube-ext-bench'),
  });
  return image;
}
