import { createHash } from 'node:crypto';
import { mkdir, rm, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IoError } from '@diskube/core';
import type { StateDigestSource } from './chain.js';
import { DIGEST_LENGTH } from './header.js';
import { fileSink, openReadOnlySource } from './io.js';
import type { BackupReader } from './reader.js';
import type { StateDigestSink } from './writer.js';

// Sources: SPEC.md §13 "State digest file". A backup without a digest table (format 2.1) leaves
// the digests of its whole state here, so that the next incremental compares digests instead of
// reading the parent's blocks back. The cache is the writer's own: losing it costs a re-read, never
// data, and a copy that fails its checks is deleted and passed over.

/** `DKBSTATE`: the first 8 bytes of a state digest file. */
export const STATE_DIGESTS_MAGIC = Uint8Array.of(0x44, 0x4b, 0x42, 0x53, 0x54, 0x41, 0x54, 0x45);
const HEAD = 8 + 16;
/** After the entries: the entry count (u64) and the SHA-256 of every byte before it. */
const TRAILER = 8 + 32;
const VERIFY_CHUNK = 1 << 20;
/** Files not used (read or written) for this long may be swept (SPEC.md §13). */
export const STATE_DIGESTS_MAX_AGE_MS = 30 * 24 * 3600 * 1000;

/** A state digest file being written; nothing is visible under its name until `commit`. */
export interface StateDigestWriter extends StateDigestSink {
  /** Finish the file and give it its name (call once the backup itself is complete). */
  commit(): Promise<void>;
  /** Drop what was written (the backup failed). */
  abort(): Promise<void>;
}

/** An opened, checked copy of a backup's state digests. */
export interface CachedStateDigests extends StateDigestSource {
  close(): Promise<void>;
}

const isId = (id: string) => /^[0-9a-f]{32}$/.test(id);

/**
 * The digests of the states of backups made on this machine, one file per backup id under
 * `dir/dkb-state/<2 hex>/<id>`: magic, backup id, 16 bytes per used non-zero block of the
 * state in block order, the entry count and a SHA-256 of all of it. `open` checks the id, the
 * count (against the backup's bitmaps) and the hash before anything is used. Files are written
 * and read through the package's own file sink and source (`io.ts`).
 */
export class StateDigestCache {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    if (!isId(id)) throw new Error(`bad backup id ${id}`);
    return join(this.dir, 'dkb-state', id.slice(0, 2), id);
  }

  /**
   * The cached state digests of `reader`'s backup, or null when there is no copy or the copy is
   * not whole (then it is deleted). Reading the copy back costs 16 bytes per used block once.
   */
  async open(reader: BackupReader): Promise<CachedStateDigests | null> {
    const file = this.path(reader.backupId);
    let source: Awaited<ReturnType<typeof openReadOnlySource>>;
    try {
      source = await openReadOnlySource(file);
    } catch (error) {
      const cause = IoError.isInstance(error) ? (error.cause as { code?: string }) : undefined;
      if (cause?.code === 'ENOENT') return null;
      throw error;
    }
    let ok = false;
    try {
      const count = reader.digestedBlocks;
      const length = HEAD + count * DIGEST_LENGTH + TRAILER;
      if (source.size !== length) return null;
      const hash = createHash('sha256');
      const buf = new Uint8Array(VERIFY_CHUNK);
      const body = length - 32;
      for (let at = 0; at < body; at += VERIFY_CHUNK) {
        const n = Math.min(VERIFY_CHUNK, body - at);
        await source.read(at, buf.subarray(0, n));
        if (at === 0) {
          if (!STATE_DIGESTS_MAGIC.every((b, i) => buf[i] === b)) return null;
          if (Buffer.from(buf.subarray(8, HEAD)).toString('hex') !== reader.backupId) return null;
        }
        hash.update(buf.subarray(0, n));
      }
      const trailer = new Uint8Array(TRAILER);
      await source.read(length - TRAILER, trailer);
      const view = new DataView(trailer.buffer);
      if (view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32 !== count) return null;
      if (!hash.digest().equals(trailer.subarray(8))) return null;
      ok = true;
      // Used now: the sweep goes by modification time.
      const now = new Date();
      await utimes(file, now, now).catch(() => {});
      return {
        read: (offset, into) => source.read(HEAD + offset, into),
        close: () => source.close(),
      };
    } finally {
      if (!ok) {
        await source.close();
        await rm(file, { force: true });
      }
    }
  }

  /** Start the state digest file of backup `id` (hex), under a temporary name. */
  async create(id: string): Promise<StateDigestWriter> {
    const file = this.path(id);
    await mkdir(dirname(file), { recursive: true });
    const sink = await fileSink(file, { overwrite: true });
    const hash = createHash('sha256');
    let count = 0;
    const put = async (bytes: Uint8Array) => {
      hash.update(bytes);
      await sink.write(bytes);
    };
    const head = new Uint8Array(HEAD);
    head.set(STATE_DIGESTS_MAGIC);
    head.set(Buffer.from(id, 'hex'), 8);
    await put(head);
    return {
      async write(digests) {
        count += digests.length / DIGEST_LENGTH;
        await put(digests);
      },
      async commit() {
        const n = new Uint8Array(8);
        new DataView(n.buffer).setUint32(0, count % 2 ** 32, true);
        new DataView(n.buffer).setUint32(4, Math.floor(count / 2 ** 32), true);
        await put(n);
        await sink.write(hash.digest());
        await sink.finish();
      },
      abort: () => sink.abort(null),
    };
  }

  /** Forget backup `id`'s copy (its child has its own now). */
  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }
}
