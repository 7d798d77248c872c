import type { DiskSpec, ExtendedSpec, FilesystemSpec, PartitionSpec, Pos } from './ast.js';
import { SpecError } from './errors.js';
import { builderOf } from './fs/registry.js';
import { GPT_TYPE_ALIASES } from './parse.js';
import { formatSize } from './size.js';

const SECTOR = 512;
const ALIGN = 1 << 20;
/** GPT: protective MBR + header + 128 entries × 128 bytes = 34 sectors; the backup is 33. */
const GPT_BACKUP_SECTORS = 33;

export interface PlacedPartition {
  /** Kernel numbering: GPT 1…n, MBR primaries 1…4, logical 5…; 0 = the whole disk (no table). */
  index: number;
  offset: number;
  size: number;
  fs: FilesystemSpec;
  /** MBR type byte (hex) or GPT type GUID. */
  type: string;
  attrs: PartitionSpec['attrs'];
}

export interface Layout {
  partitions: PlacedPartition[];
  extended?: { index: number; offset: number; size: number };
}

function mbrType(fs: FilesystemSpec): string {
  const { mbr } = builderOf(fs.type)!.partitionType;
  return typeof mbr === 'string' ? mbr : mbr(fs.options);
}

function gptType(fs: FilesystemSpec): string {
  const { gpt } = builderOf(fs.type)!.partitionType;
  return GPT_TYPE_ALIASES[gpt] ?? gpt.toUpperCase();
}

const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;
const fail = (p: Pos, msg: string): never => {
  throw new SpecError(msg, p.line, p.column);
};

/**
 * Places partitions: each starts on a 1 MiB boundary; a logical partition's EBR sits 1 MiB
 * before it. `rest` takes everything up to the end (of the disk, of the GPT's usable area, or
 * of the extended partition) and must be last at its level.
 */
export function layout(disk: DiskSpec): Layout {
  if (disk.table === 'none') {
    return {
      partitions: [
        { index: 0, offset: 0, size: disk.size, fs: disk.filesystem!, type: '', attrs: {} },
      ],
    };
  }
  const sectors = disk.size / SECTOR;
  if (disk.table === 'mbr' && sectors > 2 ** 32) {
    fail(disk.pos, 'an MBR disk can address at most 2T (2^32 sectors); use gpt');
  }
  const end = disk.table === 'gpt' ? disk.size - GPT_BACKUP_SECTORS * SECTOR : disk.size;
  const out: Layout = { partitions: [] };
  let cursor = ALIGN;
  let index = 0;

  const place = (
    item: { size: number | 'rest'; pos: Pos },
    start: number,
    limit: number,
    last: boolean,
  ): number => {
    if (item.size === 'rest' && !last)
      fail(item.pos, "'rest' must be the last partition at its level");
    const size = item.size === 'rest' ? limit - start : item.size;
    if (size % SECTOR !== 0) fail(item.pos, 'partition size must be a multiple of 512 bytes');
    if (size <= 0 || start + size > limit) {
      fail(
        item.pos,
        `partition does not fit: it would end at ${formatSize(start + size)}, past ${formatSize(limit)}`,
      );
    }
    return size;
  };

  disk.partitions.forEach((item, i) => {
    const last = i === disk.partitions.length - 1;
    index++;
    const size = place(item, cursor, end, last);
    if (item.kind === 'partition') {
      out.partitions.push(placed(disk, item, index, cursor, size));
    } else {
      out.extended = { index, offset: cursor, size };
      placeLogical(disk, item, cursor, cursor + size, out, place);
    }
    cursor = alignUp(cursor + size);
  });
  return out;
}

function placeLogical(
  disk: DiskSpec,
  ext: ExtendedSpec,
  start: number,
  limit: number,
  out: Layout,
  place: (i: { size: number | 'rest'; pos: Pos }, s: number, l: number, last: boolean) => number,
) {
  let cursor = start;
  ext.partitions.forEach((p, i) => {
    const dataStart = cursor + ALIGN;
    const size = place(p, dataStart, limit, i === ext.partitions.length - 1);
    out.partitions.push(placed(disk, p, 5 + i, dataStart, size));
    cursor = alignUp(dataStart + size);
  });
}

function placed(
  disk: DiskSpec,
  p: PartitionSpec,
  index: number,
  offset: number,
  size: number,
): PlacedPartition {
  let type = p.attrs.type;
  if (type === undefined)
    type = disk.table === 'mbr' ? mbrType(p.filesystem) : gptType(p.filesystem);
  else if (disk.table === 'mbr') type = type.replace(/^0x/i, '');
  else type = GPT_TYPE_ALIASES[type] ?? type.toUpperCase();
  return { index, offset, size, fs: p.filesystem, type, attrs: p.attrs };
}

/** sfdisk input for the layout; ids and GUIDs come from `guid(purpose)` (deterministic). */
export function sfdiskScript(
  disk: DiskSpec,
  lay: Layout,
  guid: (purpose: string) => string,
): string {
  const lines: string[] = [];
  const s = (bytes: number) => bytes / SECTOR;
  if (disk.table === 'mbr') {
    lines.push('label: dos', `label-id: 0x${guid('mbr-id').slice(0, 8)}`);
  } else {
    lines.push('label: gpt', `label-id: ${guid('gpt-disk').toUpperCase()}`);
  }
  lines.push('unit: sectors', 'sector-size: 512', '');
  const entries: Array<{ index: number; line: string }> = [];
  for (const p of lay.partitions) {
    let line = `start=${s(p.offset)}, size=${s(p.size)}, type=${p.type}`;
    if (disk.table === 'gpt') {
      line += `, uuid=${guid(`gpt-part-${p.index}`).toUpperCase()}`;
      if (p.attrs.name) line += `, name="${p.attrs.name.replace(/"/g, '')}"`;
    } else if (p.attrs.bootable) line += ', bootable';
    entries.push({ index: p.index, line });
  }
  if (lay.extended) {
    const e = lay.extended;
    entries.push({ index: e.index, line: `start=${s(e.offset)}, size=${s(e.size)}, type=5` });
  }
  entries.sort((a, b) => a.index - b.index);
  for (const e of entries) lines.push(e.line);
  return `${lines.join('\n')}\n`;
}
