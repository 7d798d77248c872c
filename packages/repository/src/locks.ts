import { IoError } from '@diskube/core';
import { isNotFound } from './backend.js';
import { encodeJson, type Repository, randomHex } from './repository.js';

// Sources: SPEC.md, "Locks" (after restic's lock files: no conditional writes needed).

/** A lock not refreshed for this long is stale, whoever holds it. */
export const STALE_AFTER_MS = 30 * 60 * 1000;
/** Held locks are rewritten this often. */
export const REFRESH_EVERY_MS = 5 * 60 * 1000;
/**
 * A holder whose lock was not rewritten for this long (a failing store, a paused process) may
 * soon be judged stale by others, and stops before it commits or deletes anything.
 */
export const LOST_AFTER_MS = STALE_AFTER_MS - REFRESH_EVERY_MS;

export interface LockInfo {
  key: string;
  exclusive: boolean;
  host: string;
  pid: number;
  /** ISO time of the last refresh. */
  time: string;
  operation: string;
  /** Why it is stale (`age`, `dead-process`), or null while it must be respected. */
  stale: 'age' | 'dead-process' | null;
  unreadable?: boolean;
}

export interface HeldLock {
  readonly key: string;
  /** Rewrite the lock now, under the same key (it is rewritten every `REFRESH_EVERY_MS`). */
  refresh(): Promise<void>;
  /**
   * Fails with IO `lock-lost` when others may no longer respect the lock: it was not rewritten
   * for `LOST_AFTER_MS`, or it is gone from the repository (removed by `repo unlock`, or by a
   * prune that judged it stale). Call before committing (a manifest) or deleting (prune).
   */
  check(signal?: AbortSignal): Promise<void>;
  /** Stop refreshing (waiting for a rewrite in flight) and delete the lock. */
  release(): Promise<void>;
}

function lockBody(repo: Repository, exclusive: boolean, operation: string) {
  return encodeJson({
    exclusive,
    host: repo.owner.host,
    pid: repo.owner.pid,
    ...(repo.owner.pidNamespace ? { pidNamespace: repo.owner.pidNamespace } : {}),
    time: new Date().toISOString(),
    operation,
  });
}

/** Every lock in the repository, judged: stale by age, or by a dead process on this host. */
export async function listLocks(repo: Repository, signal?: AbortSignal): Promise<LockInfo[]> {
  const locks: LockInfo[] = [];
  const now = Date.now();
  for await (const info of repo.backend.list('locks/', signal)) {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(new TextDecoder().decode(await repo.backend.get(info.key, signal)));
    } catch (error) {
      if (isNotFound(error)) continue; // released meanwhile
      // A lock we cannot read is judged by its object's age alone.
      const old = info.mtimeMs !== undefined && now - info.mtimeMs > STALE_AFTER_MS;
      locks.push({
        key: info.key,
        exclusive: true,
        host: '?',
        pid: 0,
        time: info.mtimeMs !== undefined ? new Date(info.mtimeMs).toISOString() : '?',
        operation: '?',
        stale: old ? 'age' : null,
        unreadable: true,
      });
      continue;
    }
    const host = String(body.host);
    const pid = Number(body.pid);
    const time = String(body.time);
    // Old by the holder's clock and by the store's: a holder whose clock is behind is not
    // judged stale while it still rewrites its lock.
    const age = now - Date.parse(time);
    const objectAge = info.mtimeMs !== undefined ? now - info.mtimeMs : age;
    let stale: LockInfo['stale'] = null;
    if (!(age <= STALE_AFTER_MS) && !(objectAge <= STALE_AFTER_MS)) stale = 'age';
    else if (
      host === repo.owner.host &&
      // Same host name, other pid namespace (containers): its pids are not ours to look up.
      (body.pidNamespace === undefined || body.pidNamespace === repo.owner.pidNamespace) &&
      repo.owner.isAlive &&
      pid > 0 &&
      !repo.owner.isAlive(pid)
    )
      stale = 'dead-process';
    locks.push({
      key: info.key,
      exclusive: body.exclusive === true,
      host,
      pid,
      time,
      operation: String(body.operation),
      stale,
    });
  }
  return locks;
}

function describe(lock: LockInfo): string {
  return `${lock.exclusive ? 'exclusive' : 'shared'} lock ${lock.key} (${lock.operation} on ${lock.host}, pid ${lock.pid}, refreshed ${lock.time})`;
}

/**
 * Take a lock: write it, then list the others. A shared lock (backup) conflicts with live
 * exclusive locks, an exclusive one (prune) with every live lock. On conflict our lock is
 * removed again and the call fails with IO `locked`, naming the holder and how to clear it.
 * Stale locks are ignored (an exclusive taker removes them).
 */
export async function acquireLock(
  repo: Repository,
  exclusive: boolean,
  operation: string,
  signal?: AbortSignal,
): Promise<HeldLock> {
  // The key never changes while the lock is held: a refresh overwrites it (an S3 PUT and the
  // directory's rename are atomic). A refresh under a new key, deleting the old one, could slip
  // between another process's listing of locks/ and its read of the old key, and the lock
  // would look released.
  const key = `locks/${randomHex(16)}`;
  /** `Date.now()` when the last successful write began. */
  let written = 0;
  let pending: Promise<void> | null = null;
  let released = false;
  const write = async (writeSignal?: AbortSignal) => {
    const at = Date.now();
    await repo.backend.put(key, lockBody(repo, exclusive, operation), writeSignal);
    written = at;
  };
  await write(signal);
  const refresh = (): Promise<void> => {
    if (released) return Promise.resolve();
    pending ??= write().finally(() => {
      pending = null;
    });
    return pending;
  };
  const release = async () => {
    released = true;
    clearInterval(timer);
    // A rewrite still in flight would put the lock back after the delete.
    await pending?.catch(() => {});
    await repo.backend.delete(key).catch(() => {});
  };
  const check = async (checkSignal?: AbortSignal) => {
    const lost = (why: string) =>
      new IoError(
        `the ${exclusive ? 'exclusive' : 'shared'} lock ${key} on ${repo.backend.location} ${why}; ` +
          'another process may have judged it stale, so nothing more is written',
        { reason: 'lock-lost' },
      );
    const age = Date.now() - written;
    if (age > LOST_AFTER_MS)
      throw lost(`was not rewritten for ${(age / 60_000).toFixed(0)} minutes`);
    if ((await repo.backend.head(key, checkSignal)) === undefined)
      throw lost('is gone from the repository');
  };
  const timer = setInterval(() => {
    refresh().catch(() => {});
  }, REFRESH_EVERY_MS);
  (timer as { unref?: () => void }).unref?.();
  try {
    const others = (await listLocks(repo, signal)).filter((l) => l.key !== key);
    const blocking = others.filter((l) => l.stale === null && (exclusive || l.exclusive));
    if (blocking.length > 0) {
      throw new IoError(
        `${repo.backend.location} is locked by ${blocking.map(describe).join('; ')}. ` +
          'Wait for it to finish; if that process is gone, remove the lock with "diskube repo unlock --repo <repo> --all"',
        { reason: 'locked' },
      );
    }
    if (exclusive) {
      for (const lock of others)
        if (lock.stale !== null) await repo.backend.delete(lock.key, signal);
    }
  } catch (error) {
    await release();
    throw error;
  }
  return { key, refresh, check, release };
}

/** Remove stale locks (all locks with `all`); returns the removed ones. */
export async function unlockRepository(
  repo: Repository,
  options: { all?: boolean; signal?: AbortSignal } = {},
): Promise<LockInfo[]> {
  const removed: LockInfo[] = [];
  for (const lock of await listLocks(repo, options.signal)) {
    if (options.all || lock.stale !== null) {
      await repo.backend.delete(lock.key, options.signal);
      removed.push(lock);
    }
  }
  return removed;
}
