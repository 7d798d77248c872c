// Time and peak RSS of one usedBlocks call on the benchmark image (built by `pnpm bench`).
// Usage: pnpm build && node bench/peak.mjs [image]   (or under /usr/bin/time -v)
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '@diskube/core/node';
import { ntfsDriver } from '../dist/index.js';

const path = process.argv[2] ?? join(tmpdir(), 'diskube-ntfs-bench', 'ntfs-256g.img');
const source = await openFileSource(path);
const start = performance.now();
const result = await ntfsDriver.usedBlocks(source);
const ms = performance.now() - start;
await source.close();
console.log(
  JSON.stringify({
    image: path,
    clusters: result.blockCount,
    used: result.used.count(),
    ms: Math.round(ms),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
