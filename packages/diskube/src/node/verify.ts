import {
  type BackupInfo,
  openBackup,
  type Progress,
  type VerifyReport,
  verifyBackup,
} from '@diskube/format';
import { discoverChain } from '@diskube/restore';

export interface VerifyOptions {
  /** Progress of the frames checked in each backup in turn. */
  onProgress?: (progress: Progress & { path: string }) => void;
  signal?: AbortSignal;
}

export interface VerifyResult {
  /** True when every backup of the chain checked clean. */
  ok: boolean;
  /** The named backup first, then its ancestors newest first. */
  backups: Array<{ path: string; report: VerifyReport }>;
}

/**
 * Checks every checksum of a backup and of the chain it depends on. Damage is reported in the
 * result, not thrown; a missing ancestor or an I/O failure rejects.
 */
export async function verify(path: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const progress = (at: string) =>
    options.onProgress ? (p: Progress) => options.onProgress!({ ...p, path: at }) : undefined;
  // The named file first: a damaged header must be reported, not hidden by the chain lookup.
  const first = await verifyBackup(path, withProgress(progress(path)));
  const backups = [{ path, report: first }];
  if (first.ok) {
    // Opening the chain already checked each ancestor's header, footer and sections; verify
    // their frames through the same readers instead of opening every file a second time.
    const chain = await discoverChain(path);
    try {
      for (const reader of chain.slice(0, -1).reverse()) {
        options.signal?.throwIfAborted();
        backups.push({
          path: reader.path,
          report: await reader.verify(withProgress(progress(reader.path))),
        });
      }
    } finally {
      for (const reader of chain) await reader.close();
    }
  }
  return { ok: backups.every((b) => b.report.ok), backups };
}

function withProgress(onProgress: ((p: Progress) => void) | undefined) {
  return onProgress ? { onProgress } : {};
}

/** What a backup holds and how it was made, from its header and sections. */
export async function backupInfo(path: string): Promise<BackupInfo> {
  const reader = await openBackup(path);
  try {
    return reader.info();
  } finally {
    await reader.close();
  }
}
