// Time and peak RSS of one usedBlocks call on the benchmark image (built by `pnpm bench`).
// Usage: pnpm build && node bench/peak.mjs [image] [--cross-check]   (or under /usr/bin/time -v)
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '@diskube/core/node';
import { ntfsDriver } from '../dist/index.js';

const args = process.argv.slice(2);
const crossCheck = args.includes('--cross-check');
const path =
  args.find((a) => !a.startsWith('--')) ?? join(tmpdir(), 'diskube-ntfs-bench', 'ntfs-256g.img');
const source = await openFileSource(path);
const start = performance.now();
const cpu = process.cpuUsage();
const result = await ntfsDriver.usedBlocks(source, { crossCheck });
const ms = performance.now() - start;
const { user, system } = process.cpuUsage(cpu);
await source.close();
console.log(
  JSON.stringify({
    image: path,
    crossCheck,
    clusters: result.blockCount,
    used: result.used.count(),
    records: result.facts.mftRecords,
    ...(result.crossCheck
      ? {
          walked: result.crossCheck.objects,
          referenced: result.crossCheck.referencedBlocks,
          missing: result.crossCheck.missingBlocks,
        }
      : {}),
    ms: Math.round(ms),
    cpuMs: Math.round((user + system) / 1000),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
