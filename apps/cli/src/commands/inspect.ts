import type { DiskMap, DiskPart } from '@diskube/partition';
import type { Command } from 'commander';
import { analyzeImage, printWarnings, usedBytes } from '../analyze.js';
import { formatBytes, formatPercent, printJson } from '../format.js';

interface InspectOptions {
  json?: boolean;
  fullCopyOnDoubt?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Show what an image holds: partitions, filesystems, blocks used and total.')
    .argument('<image>', 'raw disk or filesystem image')
    .option('--json', 'print a JSON object instead of text')
    .option('--full-copy-on-doubt', 'treat every block as used when the metadata cannot be trusted')
    .action(async (image: string, options: InspectOptions) => {
      const { path, map, container } = await analyzeImage(image, {
        fullCopyOnDoubt: options.fullCopyOnDoubt,
      });
      printWarnings(map.warnings);
      if (options.json) {
        printJson({ ...inspectJson(path, map), container });
        return;
      }
      const lines = inspectText(path, map);
      if (container.format !== 'raw') {
        lines.splice(
          1,
          0,
          `container    ${container.format}, virtual disk ${formatBytes(container.virtualSize)}, allocation unit ${formatBytes(container.allocationUnit)}`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

function partJson(part: DiskPart) {
  const { result } = part;
  return {
    partition: part.partition,
    offset: part.offset,
    size: part.size,
    kind: part.kind,
    content: part.content,
    usedBytes: part.usedBytes,
    filesystem: result && {
      type: result.filesystem,
      blockSize: result.blockSize,
      blockCount: result.blockCount,
      usedBlocks: result.used.count(),
      tail: result.tail,
      facts: result.facts,
    },
    warnings: part.warnings,
  };
}

export function inspectJson(path: string, map: DiskMap) {
  return {
    path,
    size: map.size,
    blockSize: map.blockSize,
    usedBytes: usedBytes(map),
    partitionTable: map.table && {
      scheme: map.table.scheme,
      sectorSize: map.table.sectorSize,
      partitions: map.table.partitions.length,
    },
    parts: map.parts.map(partJson),
    warnings: map.warnings,
  };
}

export function inspectText(path: string, map: DiskMap): string[] {
  const kept = usedBytes(map);
  const out = [
    `image        ${path}`,
    `size         ${formatBytes(map.size)} (${map.size} bytes)`,
    `kept         ${formatBytes(kept)} (${formatPercent(kept, map.size)})`,
  ];
  const whole = map.parts.length === 1 && map.parts[0]!.partition === null ? map.parts[0]! : null;
  if (whole?.result) {
    const result = whole.result;
    const used = result.used.count();
    out.push(
      `filesystem   ${result.filesystem}`,
      `block size   ${result.blockSize}`,
      `blocks       ${used} used of ${result.blockCount} (${formatPercent(used, result.blockCount)})`,
    );
    if (result.tail.length > 0) {
      out.push(
        `tail         ${formatBytes(result.tail.length)} after the filesystem, ${result.tail.used ? 'kept' : 'not kept'}: ${result.tail.reason}`,
      );
    }
    for (const [key, value] of Object.entries(result.facts)) {
      out.push(`${key.padEnd(12)} ${Array.isArray(value) ? value.join(',') : String(value)}`);
    }
    return out;
  }
  if (!map.table) {
    out.push('contents     nothing recognised: the whole image is kept');
    return out;
  }
  out.push(
    `table        ${map.table.scheme.toUpperCase()}, ${map.table.partitions.length} partitions`,
    '',
  );
  const rows = [['#', 'start', 'size', 'type', 'contents', 'kept']];
  for (const part of map.parts) {
    const p = part.partition!;
    rows.push([
      String(p.number),
      formatBytes(p.offset),
      formatBytes(p.size),
      p.typeName === 'unknown' ? p.type : p.typeName,
      part.content ?? (part.kind === 'unknown' ? 'unknown' : ''),
      `${formatBytes(part.usedBytes)} (${formatPercent(part.usedBytes, p.size)})`,
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows)
    out.push(`  ${row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}`.trimEnd());
  return out;
}
