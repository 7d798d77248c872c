import { randomBytes } from 'node:crypto';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoError } from '@diskube/core';

// The writer emits the file front to back (SPEC.md §3), yet the sections after the frames (the
// bitmaps it builds, the digest table, the frame index) are only complete once every frame is
// written. Holding them until then costs bytes per used block; a spill keeps the first few MiB
// in memory and the rest in a temporary file, read back once in order.

/** Bytes a spill keeps in memory before moving to a temporary file. */
export const SPILL_MEMORY_BYTES = 8 << 20;
/** Bytes appended to the temporary file at once, and read back per piece. */
const SPILL_CHUNK = 1 << 20;

/** An append-only byte store: memory first, a temporary file (deleted on close) beyond a limit. */
export class Spill {
  private parts: Uint8Array[] = [];
  private partsBytes = 0;
  private file: { fh: FileHandle; path: string } | null = null;
  private fileBytes = 0;
  length = 0;

  constructor(
    /** Where the temporary file goes; default the OS temporary directory. */
    private readonly dir: string = tmpdir(),
    private readonly memoryLimit = SPILL_MEMORY_BYTES,
  ) {}

  private current = new Uint8Array(0);
  private currentUsed = 0;

  /** Append a copy of `bytes` (small pieces are gathered into MiB-sized parts). */
  async push(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      if (this.currentUsed === this.current.length) {
        if (this.currentUsed > 0) {
          this.parts.push(this.current);
          this.partsBytes += this.currentUsed;
          if (this.length > this.memoryLimit) await this.flushParts();
        }
        this.current = new Uint8Array(SPILL_CHUNK);
        this.currentUsed = 0;
      }
      const take = Math.min(bytes.length - at, this.current.length - this.currentUsed);
      this.current.set(bytes.subarray(at, at + take), this.currentUsed);
      this.currentUsed += take;
      this.length += take;
      at += take;
    }
  }

  private async flushParts(): Promise<void> {
    if (this.partsBytes === 0) return;
    if (this.file === null) {
      const path = join(this.dir, `.diskube-spill-${randomBytes(6).toString('hex')}`);
      try {
        this.file = { fh: await open(path, 'wx+'), path };
      } catch (cause) {
        throw new IoError(`cannot create the temporary file ${path}`, { reason: 'open', cause });
      }
    }
    const parts = this.parts;
    this.parts = [];
    this.partsBytes = 0;
    try {
      for (const p of parts) {
        let done = 0;
        while (done < p.length) {
          const { bytesWritten } = await this.file.fh.write(
            p,
            done,
            p.length - done,
            this.fileBytes,
          );
          done += bytesWritten;
          this.fileBytes += bytesWritten;
        }
      }
    } catch (cause) {
      throw new IoError(`cannot write the temporary file ${this.file.path}`, {
        reason: 'write',
        cause,
      });
    }
  }

  /** Everything appended, in order, in pieces valid until the next one is asked for. */
  async *read(): AsyncGenerator<Uint8Array> {
    if (this.file !== null) {
      const buf = new Uint8Array(Math.min(SPILL_CHUNK, this.fileBytes));
      for (let at = 0; at < this.fileBytes; ) {
        const n = Math.min(buf.length, this.fileBytes - at);
        const { bytesRead } = await this.file.fh.read(buf, 0, n, at);
        if (bytesRead !== n)
          throw new IoError(`temporary file ${this.file.path} ended early`, { reason: 'write' });
        at += n;
        yield buf.subarray(0, n);
      }
    }
    for (const p of this.parts) yield p;
    if (this.currentUsed > 0) yield this.current.subarray(0, this.currentUsed);
  }

  /** Delete the temporary file, if any. */
  async close(): Promise<void> {
    this.parts = [];
    this.current = new Uint8Array(0);
    this.currentUsed = 0;
    const f = this.file;
    this.file = null;
    if (f !== null) {
      await f.fh.close().catch(() => {});
      await unlink(f.path).catch(() => {});
    }
  }
}
