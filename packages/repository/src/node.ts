import { hostname } from 'node:os';
import type { Backend } from './backend.js';
import { localBackend } from './local.js';
import type { LockOwner } from './repository.js';

export { localBackend } from './local.js';

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

/** This process as a lock owner: host name, pid, and a liveness check for pids on this host. */
export function processOwner(): LockOwner {
  return {
    host: hostname(),
    pid: process.pid,
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
