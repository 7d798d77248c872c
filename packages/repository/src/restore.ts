import { CorruptError, IoError } from '@diskube/core';
import { isNotFound } from './backend.js';
import type { RepositoryProgress } from './backup.js';
import { fetchChunk, ZERO_ID } from './chunks.js';
import { CHUNKS_PER_INDEX, type Repository } from './repository.js';
import {
  readIndex,
  readManifest,
  readUsedMap,
  resolveSnapshot,
  type SnapshotInfo,
} from './snapshots.js';

/** Where a restore writes (the shape of `@diskube/restore`'s `RestoreTarget`). */
export interface RestoreSink {
  readonly size: number;
  /** True when bytes never written read back as zeros (holes can be left). */
  readonly zeroed: boolean;
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Make the result durable and visible. */
  finish(): Promise<void>;
  /** Give up: remove what was written. */
  abort(): Promise<void>;
}

export interface RestoreSnapshotOptions {
  /** `vm@latest`, a snapshot id or a unique prefix of one. */
  snapshot: string;
  /** The target, made for the snapshot's disk size (`diskSize` is passed). */
  target: RestoreSink | ((snapshot: SnapshotInfo) => Promise<RestoreSink>);
  signal?: AbortSignal;
  onProgress?: (progress: RepositoryProgress) => void;
}

export interface RestoreSnapshotResult {
  snapshot: SnapshotInfo;
  bytesWritten: number;
  chunksFetched: number;
}

/**
 * Restore a snapshot: chunks fetched in parallel and checked (SHA-256), each used byte written
 * once, unused blocks and all-zero chunks left as holes (written as zeros when the target is not
 * `zeroed`). On any failure the target is aborted, so no valid-looking output remains.
 */
export async function restoreSnapshot(
  repo: Repository,
  options: RestoreSnapshotOptions,
): Promise<RestoreSnapshotResult> {
  const { signal } = options;
  // Found through the cache, if any; then read from the repository itself, so that a restore
  // refuses a damaged manifest there as verify reports it (one request).
  const found = await resolveSnapshot(repo, options.snapshot, signal);
  const snapshot = repo.cache ? await readManifest(repo, found.id, signal, true) : found;
  const used = await readUsedMap(repo, snapshot, signal);
  const target =
    typeof options.target === 'function' ? await options.target(snapshot) : options.target;
  const { chunkSize, blockSize, diskSize } = snapshot;
  const tailStart = used.length * blockSize;
  let bytesWritten = 0;
  let chunksFetched = 0;
  let bytesDone = 0;
  try {
    for (let n = 0; n < snapshot.indexes.length; n++) {
      const ids = await readIndex(repo, snapshot, n, signal);
      let next = 0;
      const worker = async () => {
        while (next < ids.length) {
          const k = next++;
          signal?.throwIfAborted();
          const i = n * CHUNKS_PER_INDEX + k;
          const start = i * chunkSize;
          const length = Math.min(chunkSize, diskSize - start);
          const ref = ids[k]!;
          const id = ref.id;
          let data: Uint8Array | null = null;
          if (id !== ZERO_ID) {
            try {
              data = await fetchChunk(repo, ref, signal);
            } catch (error) {
              if (isNotFound(error)) {
                throw new IoError(
                  `chunk ${id} of snapshot ${snapshot.id} is missing from ${repo.backend.location} (${(error as Error).message})`,
                  {
                    reason: 'not-found',
                    cause: error,
                  },
                );
              }
              throw error;
            }
            chunksFetched++;
            if (data.length !== length) {
              throw new CorruptError(
                `chunk ${id} holds ${data.length} bytes, the disk needs ${length} at ${start}`,
                {
                  structure: `chunk ${id}`,
                  offset: 0,
                  reason: 'bad-length',
                },
              );
            }
          }
          // Used runs (and the used tail) are written; the rest stays a hole on a zeroed target.
          const runs: Array<[number, number]> = [];
          const firstBlock = Math.floor(start / blockSize);
          const lastBlock = Math.min(Math.ceil((start + length) / blockSize), used.length);
          if (data !== null && firstBlock < lastBlock) {
            used.forEachRun(
              (b, c) => {
                const s = Math.max(b * blockSize, start);
                const e = Math.min((b + c) * blockSize, start + length);
                if (e > s) runs.push([s, e - s]);
              },
              firstBlock,
              lastBlock,
            );
          }
          if (data !== null && snapshot.tailUsed && start + length > tailStart) {
            const s = Math.max(tailStart, start);
            runs.push([s, start + length - s]);
          }
          if (!target.zeroed) {
            await target.write(start, data ?? new Uint8Array(length));
            bytesWritten += length;
          } else {
            for (const [s, len] of runs) {
              await target.write(s, data!.subarray(s - start, s - start + len));
              bytesWritten += len;
            }
          }
          bytesDone += length;
          options.onProgress?.({ bytesDone, bytesTotal: diskSize });
        }
      };
      const failures: unknown[] = [];
      await Promise.all(
        Array.from({ length: Math.min(repo.concurrency, ids.length) }, () =>
          worker().catch((error) => {
            failures.push(error);
            next = ids.length;
          }),
        ),
      );
      if (failures.length > 0) throw failures[0];
    }
    await target.finish();
  } catch (error) {
    await target.abort().catch(() => {});
    throw error;
  }
  return { snapshot, bytesWritten, chunksFetched };
}
