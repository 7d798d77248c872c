import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockSource } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { bench, describe } from 'vitest';
import { openContainer } from './index.js';

// Sequential read throughput of a 256 MiB virtual disk full of incompressible data, read in
// 1 MiB chunks: straight from the raw file vs through the qcow2 container path (64 KiB clusters,
// L2 lookups, host-contiguous runs merged into one read). Target: qcow2 under 1.3x raw.

const SIZE = 256 * 1024 * 1024;
const dir = join(tmpdir(), 'diskube-container-bench');
const raw = join(dir, 'disk.raw');
const qcow2 = join(dir, 'disk.qcow2');

function build(): void {
  if (existsSync(qcow2)) return;
  mkdirSync(dir, { recursive: true });
  const bytes = new Uint8Array(SIZE);
  const words = new Uint32Array(bytes.buffer);
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  writeFileSync(`${raw}.tmp`, bytes);
  renameSync(`${raw}.tmp`, raw);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, `${qcow2}.tmp`]);
  renameSync(`${qcow2}.tmp`, qcow2);
}

build();

const chunk = new Uint8Array(1024 * 1024);
async function readAll(source: BlockSource): Promise<void> {
  for (let at = 0; at < source.size; at += chunk.length) await source.read(at, chunk);
}

describe('sequential read of 256 MiB', () => {
  bench(
    'raw file',
    async () => {
      const file = await openFileSource(raw);
      try {
        await readAll(file);
      } finally {
        await file.close();
      }
    },
    { iterations: 12, warmupIterations: 3 },
  );

  bench(
    'qcow2 container',
    async () => {
      const file = await openFileSource(qcow2);
      try {
        const { disk } = await openContainer(file);
        await readAll(disk);
      } finally {
        await file.close();
      }
    },
    { iterations: 12, warmupIterations: 3 },
  );
});
