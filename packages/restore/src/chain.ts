import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CorruptError, InvalidArgumentError } from '@diskube/core';
import { type BackupReader, checkChain, openBackup, readBackupHeader } from '@diskube/format';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

// The chain rules live in @diskube/format (the incremental writer needs them too).
export { checkChain };

/**
 * Open the backup at `path` and its ancestors, found among the files of the same directory by
 * parent id (the file named by the parent hint is tried first). Returns readers oldest first;
 * close them when done. A missing ancestor is `INVALID_ARGUMENT` with reason `missing-parent`
 * (the caller did not put the file beside it; nothing read contradicts the format); a damaged one
 * is the `CorruptError` its opening throws; ancestors whose ids loop are CORRUPT `broken-chain`.
 */
export async function discoverChain(path: string): Promise<BackupReader[]> {
  const chain: BackupReader[] = [];
  try {
    let current = await openBackup(path);
    chain.unshift(current);
    const dir = dirname(path);
    let names: string[] | null = null;
    const seen = new Set<string>([current.backupId]);
    while (current.header.kind === 'incremental') {
      const want = hex(current.header.parentId);
      names ??= (await readdir(dir, { withFileTypes: true }))
        .filter((d) => d.isFile() && !d.name.startsWith('.'))
        .map((d) => d.name);
      const hint = current.header.parentHint;
      const candidates = [
        ...(hint !== '' && names.includes(basename(hint)) ? [basename(hint)] : []),
        ...names,
      ];
      let found: string | null = null;
      for (const name of candidates) {
        const header = await readBackupHeader(join(dir, name));
        if (header !== null && hex(header.backupId) === want) {
          found = join(dir, name);
          break;
        }
      }
      if (found === null && candidates[0] === basename(hint)) {
        // The file the parent was written as is there but unreadable: say so rather than
        // "missing" (opening it throws the precise CorruptError).
        const damaged = await openBackup(join(dir, basename(hint)));
        await damaged.close();
      }
      if (found === null) {
        throw new InvalidArgumentError(
          `parent ${want} of ${current.path} (last seen as "${hint}") is not in ${dir}`,
          { reason: 'missing-parent' },
        );
      }
      if (seen.has(want))
        throw new CorruptError(`backup chain loops at ${found}`, {
          structure: 'backup header',
          offset: 0x28,
          reason: 'broken-chain',
        });
      seen.add(want);
      current = await openBackup(found);
      chain.unshift(current);
    }
    checkChain(chain);
    return chain;
  } catch (error) {
    await Promise.all(chain.map((r) => r.close()));
    throw error;
  }
}
