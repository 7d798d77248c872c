import { basename } from 'node:path';
import type { Command } from 'commander';
import type { InspectedLayer, InspectedPart, Inspection } from 'diskube';
import { inspectImageFile } from 'diskube/node';
import { formatBytes, formatPercent, printJson } from '../format.js';
import { printWarning } from '../warnings.js';

interface InspectOptions {
  json?: boolean;
  fullCopyOnDoubt?: boolean;
  allowBackingDir?: string[];
}

/** Commander collector for a repeatable `--allow-backing-dir DIR`. */
export function collectDirs(dir: string, dirs: string[] = []): string[] {
  return [...dirs, dir];
}

export const ALLOW_BACKING_DIR_HELP =
  "a directory where an overlay's backing files may also be (repeatable); by default only files beside their overlay are opened";

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show what an image holds: partitions, filesystems, blocks used and total.')
    .argument('<image>', 'raw disk or filesystem image')
    .option('--json', 'print a JSON object instead of text')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .option('--allow-backing-dir <dir>', ALLOW_BACKING_DIR_HELP, collectDirs)
    .action(async (image: string, options: InspectOptions) => {
      const inspection = await inspectImageFile(image, {
        fullCopyOnDoubt: options.fullCopyOnDoubt ?? false,
        ...(options.allowBackingDir ? { allowBackingDir: options.allowBackingDir } : {}),
      });
      inspection.warnings.forEach(printWarning);
      if (options.json) printJson(inspectJson(image, inspection));
      else process.stdout.write(`${inspectText(image, inspection).join('\n')}\n`);
    });
}

/** The JSON form: the inspection without its bitmap and full map. */
export function inspectJson(path: string, inspection: Inspection) {
  const { used: _used, map: _map, table, ...rest } = inspection;
  return { path, ...rest, partitionTable: table };
}

export function inspectText(path: string, inspection: Inspection): string[] {
  const { container, layers, size, usedBytes: kept } = inspection;
  const out = [
    `image        ${path}`,
    ...(container.format !== 'raw'
      ? [
          `container    ${container.format}, virtual disk ${formatBytes(container.virtualSize)}, allocation unit ${formatBytes(container.allocationUnit)}`,
        ]
      : []),
    ...(layers.length > 1
      ? [
          `chain        ${layers
            .map((layer) => `${layer.name ?? basename(path)} (${layerHolds(layer)})`)
            .join(' → ')}`,
        ]
      : []),
    `size         ${formatBytes(size)} (${size} bytes)`,
    `kept         ${formatBytes(kept)} (${formatPercent(kept, size)})`,
  ];
  const [first] = inspection.parts;
  if (inspection.parts.length === 1 && first!.number === null && first!.filesystem) {
    const fs = first!.filesystem;
    out.push(
      `filesystem   ${fs.type}`,
      `block size   ${fs.blockSize}`,
      `blocks       ${fs.usedBlocks} used of ${fs.blockCount} (${formatPercent(fs.usedBlocks, fs.blockCount)})`,
    );
    if (fs.tail.length > 0) {
      out.push(
        `tail         ${formatBytes(fs.tail.length)} after the filesystem, ${fs.tail.used ? 'kept' : 'not kept'}: ${fs.tail.reason}`,
      );
    }
    for (const [key, value] of Object.entries(fs.facts)) {
      out.push(`${key.padEnd(12)} ${Array.isArray(value) ? value.join(',') : String(value)}`);
    }
    return out;
  }
  if (!inspection.table && first?.volumeGroup) {
    // A whole disk used as an LVM PV.
    out.push(`contents     ${volumeGroupLabel(first)}`, '');
    pushRows(out, [ROW_HEAD, ...volumeRows(first)]);
    return out;
  }
  if (!inspection.table) {
    // Kept whole: say why (nothing recognised, an unsupported filesystem, a doubt absorbed).
    out.push(
      `contents     ${first?.warnings[0]?.message ?? 'nothing recognised: the whole image is kept'}`,
    );
    return out;
  }
  out.push(
    `table        ${inspection.table.scheme.toUpperCase()}, ${inspection.table.partitions} partitions`,
    '',
  );
  const rows = [ROW_HEAD];
  for (const part of inspection.parts) {
    rows.push([
      String(part.number),
      formatBytes(part.offset),
      formatBytes(part.size),
      part.type ?? '',
      part.volumeGroup
        ? volumeGroupLabel(part)
        : (part.content ?? (part.kind === 'unknown' ? 'unknown' : '')),
      keptCell(part.usedBytes, part.size),
    ]);
    rows.push(...volumeRows(part));
  }
  pushRows(out, rows);
  return out;
}

/** What a chain layer holds itself: its allocated data, zero marks, and its file's size. */
function layerHolds(layer: InspectedLayer): string {
  const zero = layer.zeroBytes > 0 ? `, ${formatBytes(layer.zeroBytes)} zeroed` : '';
  return `${formatBytes(layer.dataBytes)} allocated${zero}, file ${formatBytes(layer.fileSize)}`;
}

const ROW_HEAD = ['#', 'start', 'size', 'type', 'contents', 'kept'];

const keptCell = (used: number, size: number) =>
  `${formatBytes(used)} (${formatPercent(used, size)})`;

function volumeGroupLabel(part: InspectedPart): string {
  const group = part.volumeGroup!;
  return `${group.format} PV of VG ${group.name}, ${group.volumes.length} LVs`;
}

/** One row per LV under its PV: name, what it holds, what of it is kept. */
function volumeRows(part: InspectedPart): string[][] {
  const volumes = part.volumeGroup?.volumes ?? [];
  return volumes.map((v, i) => [
    '',
    '',
    formatBytes(v.size),
    `${i === volumes.length - 1 ? '└' : '├'} LV ${v.name}`,
    v.content ?? (v.warnings[0] ? `unknown: ${v.warnings[0].code}` : 'unknown'),
    keptCell(v.usedBytes, v.size),
  ]);
}

function pushRows(out: string[], rows: string[][]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows)
    out.push(`  ${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}`.trimEnd());
}
