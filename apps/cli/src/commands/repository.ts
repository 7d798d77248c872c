import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CorruptError, InvalidArgumentError } from 'diskube';
import {
  backupImageToRepository,
  defaultCacheDir,
  openRepositoryAt,
  parseChangedRanges,
  type RepositoryLocationOptions,
  restoreFromRepository,
  verifyRepository,
} from 'diskube/node';
import { formatBytes, printJson } from '../format.js';
import { progressReporter } from '../progress.js';
import { printWarning } from '../warnings.js';
import { outputFormat } from './restore.js';

/** Options every repository command takes. */
export interface RepoOptions {
  repo?: string;
  s3Endpoint?: string;
  /** False with `--no-cache`. */
  cache?: boolean;
  json?: boolean;
}

export const REPO_HELP = 'repository: a directory or s3://bucket/prefix';
export const S3_ENDPOINT_HELP = 'endpoint URL of a non-AWS S3-compatible store';
export const NO_CACHE_HELP =
  "keep no copies of the repository's snapshot manifests and (on S3) no block digests of stored chunks (default: kept in $DISKUBE_CACHE_DIR, else ~/.cache/diskube)";

/** `parent`'s subcommand `name` on a repository: `--repo`, `--s3-endpoint`, `--no-cache`. */
export function repoCommand(parent: Command, name: string, description: string): Command {
  return locationOptions(
    parent.command(name).description(description).requiredOption('--repo <repo>', REPO_HELP),
  );
}

/** `--s3-endpoint` and `--no-cache` for a command on a repository (`prefix`: when it is one). */
export function locationOptions(
  command: Command,
  prefix = '',
  cacheHelp = `${prefix}${NO_CACHE_HELP}`,
): Command {
  return command
    .option('--s3-endpoint <url>', `${prefix}${S3_ENDPOINT_HELP}`)
    .option('--no-cache', cacheHelp);
}

/** How to reach `--repo`: `--s3-endpoint`, and the per-user manifest cache unless `--no-cache`. */
export function locationOf(options: RepoOptions): RepositoryLocationOptions {
  return {
    ...(options.s3Endpoint ? { s3Endpoint: options.s3Endpoint } : {}),
    ...(options.cache !== false ? { cacheDir: defaultCacheDir() } : {}),
  };
}

/** The `--repo` value, required. */
export function repoOf(options: RepoOptions): string {
  if (!options.repo)
    throw new InvalidArgumentError('--repo <repo> is required', { reason: 'usage' });
  return options.repo;
}

/** Open the repository named by `--repo` (with `--s3-endpoint`, `--no-cache`). */
export function openRepo(options: RepoOptions) {
  return openRepositoryAt(repoOf(options), locationOf(options));
}

/** `diskube backup <image> --repo <repo> --name <vm>`. */
export async function backupToRepo(
  image: string,
  options: RepoOptions & {
    name?: string;
    changedRanges?: string;
    fullCopyOnDoubt?: boolean;
    crossCheck?: boolean;
    allowBackingDir?: string[];
    overlayOnly?: boolean;
    parent?: string;
  },
): Promise<void> {
  if (!options.name)
    throw new InvalidArgumentError('--repo needs --name <vm>', { reason: 'usage' });
  const changedRanges = options.changedRanges
    ? parseChangedRanges(await readFile(options.changedRanges, 'utf8')).map(
        (r) => [r.offset, r.length] as const,
      )
    : undefined;
  const started = performance.now();
  const progress = progressReporter('backup', !options.json);
  try {
    const result = await backupImageToRepository({
      image,
      repo: repoOf(options),
      name: options.name,
      ...locationOf(options),
      ...(changedRanges ? { changedRanges } : {}),
      ...(options.overlayOnly ? { overlayOnly: true } : {}),
      ...(options.parent !== undefined ? { parent: options.parent } : {}),
      ...(options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {}),
      fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
      crossCheck: options.crossCheck ?? false,
      onWarning: printWarning,
      onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
    });
    progress.finish();
    const seconds = (performance.now() - started) / 1000;
    const { snapshot: _, map: __, warnings, ...rest } = result;
    if (options.json) {
      printJson({
        ...rest,
        repo: options.repo,
        name: options.name,
        warnings: warnings.length,
        seconds,
      });
      return;
    }
    process.stdout.write(
      `snapshot ${result.id.slice(0, 12)} of ${options.name}: ${formatBytes(result.usedBytes)} in use of ${formatBytes(result.imageBytes)}, ` +
        `${result.newChunks} new chunks and ${result.newPatches} patches (${formatBytes(result.newStoredBytes)} stored), ${result.chunksFromParent} from the parent, ` +
        `${result.chunksDeduplicated} already in the repository, in ${seconds.toFixed(2)} s\n`,
    );
  } finally {
    progress.finish();
  }
}

/** `diskube restore --repo <repo> <vm>@latest|<id> <out>`. */
export async function restoreFromRepo(
  snapshot: string,
  output: string,
  options: RepoOptions & { format?: string; force?: boolean },
): Promise<void> {
  const format = outputFormat(output, options.format);
  const started = performance.now();
  const progress = progressReporter('restore', !options.json);
  try {
    const result = await restoreFromRepository({
      repo: repoOf(options),
      snapshot,
      out: output,
      format,
      overwrite: options.force ?? false,
      ...locationOf(options),
      onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal),
    });
    progress.finish();
    const seconds = (performance.now() - started) / 1000;
    if (options.json) {
      printJson({
        snapshot: result.snapshot.id,
        name: result.snapshot.name,
        path: output,
        format,
        bytesWritten: result.bytesWritten,
        chunksFetched: result.chunksFetched,
        seconds,
      });
      return;
    }
    process.stdout.write(
      `restored ${output} (${format}) from snapshot ${result.snapshot.id.slice(0, 12)} of ${result.snapshot.name}: ` +
        `${result.chunksFetched} chunks, wrote ${formatBytes(result.bytesWritten)} in ${seconds.toFixed(2)} s\n`,
    );
  } finally {
    progress.finish();
  }
}

/** `diskube verify --repo <repo> [--read-data]`: exit 3 when anything is missing or damaged. */
export async function verifyRepo(options: RepoOptions & { readData?: boolean }): Promise<void> {
  const repo = await openRepo(options);
  const report = await verifyRepository(repo, { readData: options.readData ?? false });
  if (options.json) printJson(report);
  else {
    process.stdout.write(
      `${report.ok ? 'ok' : 'DAMAGED'} ${repo.backend.location}: ${report.snapshots} snapshots, ${report.chunksReferenced} chunks referenced` +
        `${options.readData ? `, ${report.chunksRead} read and checked` : ' (listed; --read-data checks their content)'}` +
        `${report.passes > 1 ? `, in ${report.passes} passes over the ids` : ''}\n`,
    );
    for (const p of report.problems) {
      process.stdout.write(
        `  ${p.kind} ${p.key} (${p.reason}), needed by ${p.snapshots.join(', ') || 'no snapshot'}\n`,
      );
    }
  }
  if (!report.ok) {
    const first = report.problems[0]!;
    throw new CorruptError(
      `${repo.backend.location}: ${report.problems.length} missing or damaged objects`,
      {
        structure: first.key,
        reason: first.reason,
      },
    );
  }
}
