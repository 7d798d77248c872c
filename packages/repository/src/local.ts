import { randomBytes } from 'node:crypto';
import { constants, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, IoError } from '@diskube/core';
import { type Backend, isValidKey, type ObjectInfo } from './backend.js';

function checkKey(key: string): void {
  if (!isValidKey(key))
    throw new InvalidArgumentError(`bad object key "${key}"`, { reason: 'bad-key' });
}

function ioError(what: string, cause: unknown): IoError {
  const code = (cause as { code?: string })?.code;
  return new IoError(`${what}: ${(cause as Error)?.message ?? cause}`, {
    reason: code === 'ENOENT' ? 'not-found' : 'read-failed',
    cause,
  });
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A repository in a local directory: one file per object under `root`. A put writes a temporary
 * file in the object's directory, fsyncs it, renames it into place and fsyncs the directory (and
 * the parents of directories it had to create), so a crash leaves the old object, the new one, or
 * a `.tmp-` file that `list` ignores.
 */
export interface LocalBackendOptions {
  /** Largest object `get` accepts (memory bound; the S3 backend's default). Default 256 MiB. */
  maxObjectBytes?: number;
}

export function localBackend(root: string, options: LocalBackendOptions = {}): Backend {
  const base = resolve(root);
  const maxObjectBytes = options.maxObjectBytes ?? 256 * 1024 * 1024;
  const path = (key: string) => {
    checkKey(key);
    return join(base, key);
  };
  const readRange = async (
    key: string,
    offset: number,
    length: number | null,
  ): Promise<Uint8Array> => {
    const file = path(key); // a bad key throws InvalidArgumentError here, outside the I/O wrapping
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(file, constants.O_RDONLY);
    } catch (cause) {
      throw ioError(`cannot open ${key} in ${base}`, cause);
    }
    try {
      const size = (await fh.stat()).size;
      const want = Math.max(0, Math.min(length ?? size, size - offset));
      // A damaged file (or a foreign one) grown huge is refused before anything is allocated.
      if (want > maxObjectBytes)
        throw new IoError(`${key} in ${base}: ${want} bytes to read, above ${maxObjectBytes}`, {
          reason: 'too-large',
        });
      const buf = new Uint8Array(want);
      let done = 0;
      while (done < want) {
        const { bytesRead } = await fh.read(buf, done, want - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === want ? buf : buf.subarray(0, done);
    } catch (cause) {
      if (IoError.isInstance(cause)) throw cause;
      throw ioError(`cannot read ${key} in ${base}`, cause);
    } finally {
      await fh.close();
    }
  };
  return {
    location: base,
    get: (key) => readRange(key, 0, null),
    getRange: (key, offset, length) => readRange(key, offset, length),
    async put(key, data) {
      const file = path(key);
      const dir = dirname(file);
      const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
      try {
        const created = await mkdir(dir, { recursive: true });
        // A directory made here (`chunks/ab/` for its first chunk) must be durable in its parent
        // too, or a crash could drop it with the object the put reported written.
        if (created !== undefined)
          for (let d = dir; d.length >= created.length; d = dirname(d)) await fsyncDir(dirname(d));
        const fh = await open(
          tmp,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
          0o644,
        );
        try {
          let done = 0;
          while (done < data.length)
            done += (await fh.write(data, done, data.length - done)).bytesWritten;
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, file);
        await fsyncDir(dir);
      } catch (cause) {
        await unlink(tmp).catch(() => {});
        throw new IoError(`cannot write ${key} in ${base}: ${(cause as Error)?.message ?? cause}`, {
          reason: 'write-failed',
          cause,
        });
      }
    },
    async head(key) {
      const file = path(key);
      try {
        const s = await stat(file);
        return s.isFile() ? { key, size: s.size, mtimeMs: s.mtimeMs } : undefined;
      } catch (cause) {
        if ((cause as { code?: string }).code === 'ENOENT') return undefined;
        throw ioError(`cannot stat ${key} in ${base}`, cause);
      }
    },
    list(prefix) {
      return walk(base, prefix);
    },
    async delete(key) {
      const file = path(key);
      try {
        await rm(file, { force: true });
      } catch (cause) {
        throw ioError(`cannot delete ${key} in ${base}`, cause);
      }
    },
  };
}

/** Partial writes of a killed writer: removed once an hour old (no live put takes that long). */
const TEMP_MAX_AGE_MS = 60 * 60 * 1000;

async function sweepTemp(file: string): Promise<void> {
  try {
    if (Date.now() - (await stat(file)).mtimeMs > TEMP_MAX_AGE_MS) await unlink(file);
  } catch {
    // gone meanwhile
  }
}

/** Keys under `base` starting with `prefix`, directories walked depth-first. */
async function* walk(base: string, prefix: string): AsyncGenerator<ObjectInfo> {
  const slash = prefix.lastIndexOf('/');
  const startDir = slash >= 0 ? prefix.slice(0, slash) : '';
  const stack = [startDir];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(join(base, rel), { withFileTypes: true });
    } catch (cause) {
      if ((cause as { code?: string }).code === 'ENOENT') continue;
      throw ioError(`cannot list ${rel || '.'} in ${base}`, cause);
    }
    for (const e of entries) {
      if (e.name.startsWith('.tmp-')) {
        await sweepTemp(join(base, rel, e.name));
        continue;
      }
      const key = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) stack.push(key);
      } else if (e.isFile() && key.startsWith(prefix)) {
        try {
          const s = await stat(join(base, key));
          yield { key, size: s.size, mtimeMs: s.mtimeMs };
        } catch {
          // removed meanwhile
        }
      }
    }
  }
}
