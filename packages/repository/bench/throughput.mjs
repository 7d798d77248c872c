// PUT and GET throughput of 1 MiB objects at concurrency 8: the S3 backend against a private
// Swift s3api on loopback, and the local directory backend; plus Swift's cold start (servers
// spawned → first object stored through the whole chain). After `pnpm build`:
//   node bench/throughput.mjs [objects=64] [rounds=3]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localBackend } from '../dist/node.js';
import { s3Backend } from '../dist/s3.js';
import { createBucket, startSwift } from '../scripts/swift-s3.mjs';

const OBJECTS = Number(process.argv[2] ?? 64);
const ROUNDS = Number(process.argv[3] ?? 3);
const SIZE = 1024 * 1024;
const WIDTH = 8;

async function pool(count, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: WIDTH }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

async function measure(backend, round) {
  const data = Array.from({ length: OBJECTS }, () => new Uint8Array(randomBytes(SIZE)));
  const key = (i) => `chunks/${String(i % 256).padStart(2, '0')}/r${round}-${i}`;
  let start = performance.now();
  await pool(OBJECTS, (i) => backend.put(key(i), data[i]));
  const putS = (performance.now() - start) / 1000;
  start = performance.now();
  await pool(OBJECTS, async (i) => {
    const got = await backend.get(key(i));
    if (got.length !== SIZE) throw new Error(`${key(i)}: ${got.length} bytes`);
  });
  const getS = (performance.now() - start) / 1000;
  const mib = (OBJECTS * SIZE) / 2 ** 20;
  return { put: mib / putS, get: mib / getS };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function run(name, backend) {
  const results = [];
  for (let r = 0; r < ROUNDS; r++) results.push(await measure(backend, r));
  const put = median(results.map((r) => r.put));
  const get = median(results.map((r) => r.get));
  console.log(
    `${name.padEnd(22)} PUT ${put.toFixed(1).padStart(7)} MiB/s   GET ${get.toFixed(1).padStart(7)} MiB/s   (median of ${ROUNDS} rounds of ${OBJECTS} × 1 MiB, ${WIDTH} at a time)`,
  );
  return { put, get };
}

const dir = mkdtempSync(join(tmpdir(), 'diskube-bench-local-'));
const swift = await startSwift();
try {
  console.log(
    `Swift cold start: ${(swift.coldStartMs / 1000).toFixed(1)} s (spawn → first object stored)`,
  );
  await createBucket(swift.endpoint, 'bench');
  const s3 = s3Backend({
    url: 's3://bench/repo',
    endpoint: swift.endpoint,
    credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
  });
  const local = await run('local directory', localBackend(dir));
  const remote = await run('S3 (Swift, loopback)', s3);
  console.log(
    `S3 / local: PUT ${((100 * remote.put) / local.put).toFixed(0)} %, GET ${((100 * remote.get) / local.get).toFixed(0)} %`,
  );
  await s3.close();
} finally {
  await swift.destroy();
  rmSync(dir, { recursive: true, force: true });
}
