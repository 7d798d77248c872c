import { type Dirent, readlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { type Backend, isValidKey } from './backend.js';
import { localBackend } from './local.js';
import type { LockOwner, ObjectCache, RepositoryConfig } from './repository.js';

export { type LocalBackendOptions, localBackend } from './local.js';

export interface OpenBackendOptions {
  /** Endpoint URL of a non-AWS S3-compatible store, for `s3://` locations. */
  s3Endpoint?: string;
}

/** A backend for a location: a directory path, or an `s3://bucket/prefix` URL. */
export async function openBackend(
  location: string,
  options: OpenBackendOptions = {},
): Promise<Backend> {
  if (location.startsWith('s3://')) {
    // Loaded only for s3:// locations (the AWS SDK is large).
    const { s3Backend } = await import('./s3.js');
    return s3Backend({
      url: location,
      ...(options.s3Endpoint ? { endpoint: options.s3Endpoint } : {}),
    });
  }
  return localBackend(location);
}

/** The pid namespace of this process (`pid:[4026531836]`), or undefined where there is none. */
function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/**
 * This process as a lock owner: host name, pid, pid namespace, and a liveness check for pids on
 * this host.
 */
export function processOwner(): LockOwner {
  const ns = pidNamespace();
  return {
    host: hostname(),
    pid: process.pid,
    ...(ns ? { pidNamespace: ns } : {}),
    isAlive(pid) {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as { code?: string }).code === 'EPERM';
      }
    },
  };
}

/**
 * The per-user cache directory: `$DISKUBE_CACHE_DIR`, else `$XDG_CACHE_HOME/diskube`, else
 * `~/.cache/diskube`.
 */
export function defaultCacheDir(): string {
  const env = process.env;
  if (env.DISKUBE_CACHE_DIR) return env.DISKUBE_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'diskube');
}

/**
 * An `ObjectCache` in a directory: one file per key, written under a temporary name and renamed
 * (no fsync: a copy lost in a crash is fetched again). For `OpenOptions.cache`, keep one
 * directory per repository: `(config) => directoryCache(join(root, config.id))`.
 */
export function directoryCache(dir: string): ObjectCache {
  const file = (key: string) => {
    if (!isValidKey(key)) throw new Error(`bad cache key ${key}`);
    return join(dir, key);
  };
  const made = new Set<string>(); // folders known to exist: one mkdir each, not one per put
  return {
    async get(key) {
      try {
        return new Uint8Array(await readFile(file(key)));
      } catch (error) {
        if ((error as { code?: string }).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async put(key, bytes) {
      const path = file(key);
      if (!made.has(dirname(path))) {
        await mkdir(dirname(path), { recursive: true });
        made.add(dirname(path));
      }
      const temp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      try {
        await writeFile(temp, bytes);
        await rename(temp, path);
      } catch (error) {
        await rm(temp, { force: true });
        // The folder went away meanwhile (the cache was cleared): make it again next time.
        if ((error as { code?: string }).code === 'ENOENT') made.delete(dirname(path));
        throw error;
      }
    },
    async delete(key) {
      await rm(file(key), { force: true });
    },
    async retain(keys) {
      // Only the folders the kept keys live in are swept (all of a repository's manifests).
      const folders = new Set([...keys].map((k) => dirname(k)));
      for (const folder of folders) {
        let names: string[];
        try {
          names = await readdir(join(dir, folder));
        } catch {
          continue;
        }
        for (const name of names) {
          if (name.includes('.tmp-') || !keys.has(`${folder}/${name}`))
            await rm(join(dir, folder, name), { force: true });
        }
      }
    },
    async sweep(prefix, before) {
      // Every file under the prefix's folder, any depth, by its modification time.
      const walk = async (folder: string): Promise<void> => {
        let entries: Dirent[];
        try {
          entries = await readdir(folder, { withFileTypes: true });
        } catch {
          return;
        }
        for (const entry of entries) {
          const path = join(folder, entry.name);
          if (entry.isDirectory()) {
            await walk(path);
            continue;
          }
          const written = (await stat(path).catch(() => null))?.mtimeMs;
          if (written !== undefined && written < before) await rm(path, { force: true });
        }
      };
      await walk(file(prefix));
    },
  };
}

/**
 * `OpenOptions.cache` with one `directoryCache` per repository under `root`, named by the
 * repository's id (none for an id that is no plain name: it comes from the repository).
 */
export function cacheUnder(root: string): (config: RepositoryConfig) => ObjectCache | undefined {
  return (config) =>
    /^[A-Za-z0-9_-]{1,64}$/.test(config.id) ? directoryCache(join(root, config.id)) : undefined;
}
