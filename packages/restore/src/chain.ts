import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InvalidArgumentError } from '@diskube/core';
import { type BackupReader, openBackup, readBackupHeader } from '@diskube/format';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/**
 * Check that `chain` (oldest first) is a snapshot followed by incrementals each made from the one
 * before, all of the same geometry. Throws `INVALID_ARGUMENT` with reason `broken-chain`.
 */
export function checkChain(chain: readonly BackupReader[]): void {
  const first = chain[0];
  if (first === undefined)
    throw new InvalidArgumentError('empty backup chain', { reason: 'broken-chain' });
  if (first.header.kind !== 'snapshot') {
    throw new InvalidArgumentError(
      `${first.path} is an incremental; the chain must start with a snapshot`,
      { reason: 'broken-chain' },
    );
  }
  for (let k = 1; k < chain.length; k++) {
    const b = chain[k]!;
    const p = chain[k - 1]!;
    if (b.header.kind !== 'incremental' || hex(b.header.parentId) !== hex(p.header.backupId)) {
      throw new InvalidArgumentError(`${b.path} was not made from ${p.path}`, {
        reason: 'broken-chain',
      });
    }
    if (
      b.header.blockCount !== p.header.blockCount ||
      b.header.blockSize !== p.header.blockSize ||
      b.header.sourceSize !== p.header.sourceSize
    ) {
      throw new InvalidArgumentError(`${b.path} and ${p.path} differ in geometry`, {
        reason: 'broken-chain',
      });
    }
  }
}

/**
 * Open the backup at `path` and its ancestors, found among the files of the same directory by
 * parent id (the file named by the parent hint is tried first). Returns readers oldest first;
 * close them when done. A missing ancestor is `INVALID_ARGUMENT` with reason `missing-parent`.
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
        throw new InvalidArgumentError(`backup chain loops at ${found}`, {
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
