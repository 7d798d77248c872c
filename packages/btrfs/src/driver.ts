import { Bitmap } from '@diskube/bitmap';
import {
  type BlockSource,
  CorruptError,
  DirtyFilesystemError,
  DiskubeError,
  FieldReader,
  type FilesystemDriver,
  type ProbeResult,
  readStructure,
  type UsedBlocks,
  type UsedBlocksOptions,
  type Warning,
} from '@diskube/core';
import { type Chunk, ChunkMap, parseChunk, profileNames } from './chunk.js';
import type { Node } from './node.js';
import type { BtrfsReason } from './reasons.js';
import {
  CHUNK_ITEM_KEY,
  COMPAT_RO,
  checkSupported,
  FIRST_CHUNK_TREE_OBJECTID,
  hasBtrfsMagic,
  INCOMPAT,
  parseSuperblock,
  parseSysChunkArray,
  RESERVED_BYTES,
  SUPER_MIRRORS,
  SUPER_OFFSET,
  SUPER_SIZE,
  type Superblock,
  superblockCsumOk,
} from './superblock.js';
import { type TreeReader, walkTree } from './tree.js';

const SB = 'btrfs superblock';
/** Item types (BTRFS_*_KEY) and tree objectids used here. */
const ROOT_ITEM_KEY = 132;
const EXTENT_ITEM_KEY = 168;
const METADATA_ITEM_KEY = 169;
const EXTENT_TREE_OBJECTID = 2n;
/** Offsets in `struct btrfs_root_item`: after the 160-byte inode item, generation; bytenr; level. */
const ROOT_ITEM_GENERATION = 160;
const ROOT_ITEM_BYTENR = 176;
const ROOT_ITEM_LEVEL = 238;

function uuidText(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function featureNames(sb: Superblock): string[] {
  const out: string[] = [];
  for (const [name, bit] of Object.entries(INCOMPAT))
    if ((sb.incompat & bit) !== 0n) out.push(name);
  for (const [name, bit] of Object.entries(COMPAT_RO))
    if ((sb.compatRo & bit) !== 0n) out.push(name);
  return out;
}

/** Logical → physical reads of tree blocks, from either copy of their chunk. */
function treeReader(
  source: BlockSource,
  sb: Superblock,
  map: () => ChunkMap,
  warnings: Warning[],
  signal: AbortSignal | undefined,
): TreeReader {
  return {
    uuid: sb.metadataUuid,
    maxNodes: Math.floor(sb.devTotalBytes / sb.nodesize),
    signal,
    async read(logical, structure, copy) {
      const chunk = map().find(logical);
      if (!chunk || logical + sb.nodesize > chunk.logical + chunk.length) {
        throw new CorruptError(`tree block at logical ${logical} is in no chunk`, {
          structure,
          offset: SUPER_OFFSET + 0x50,
          reason: 'unmapped',
        });
      }
      const stripe = chunk.stripes[copy];
      if (!stripe) return null;
      const offset = stripe.offset + (logical - chunk.logical);
      return { bytes: await readStructure(source, offset, sb.nodesize, structure), offset };
    },
    badCopy(error) {
      warnings.push({
        code: 'bad-copy',
        message: `${error.message}; the second (DUP) copy is good and was used`,
        ...(error.offset !== undefined ? { offset: error.offset } : {}),
      });
    },
  };
}

/** Marks `[logical, logical + length)` used in every copy of its chunk. */
function markLogical(
  used: Bitmap,
  chunk: Chunk,
  logical: number,
  length: number,
  blockSize: number,
): void {
  for (const s of chunk.stripes) {
    const start = s.offset + (logical - chunk.logical);
    const first = Math.floor(start / blockSize);
    const end = Math.min(used.length, Math.ceil((start + length) / blockSize));
    if (end > first) used.setRange(first, end - first);
  }
}

function markBytes(used: Bitmap, start: number, length: number, blockSize: number): void {
  const first = Math.floor(start / blockSize);
  const end = Math.min(used.length, Math.ceil((start + length) / blockSize));
  if (end > first) used.setRange(first, end - first);
}

/** Every chunk in the chunk tree's leaves (CHUNK_ITEMs keyed FIRST_CHUNK_TREE). */
function chunkItems(node: Node, sectorsize: number, out: Chunk[]): void {
  for (const item of node.items) {
    if (item.key.type !== CHUNK_ITEM_KEY) continue;
    const at = item.dataAt;
    if (item.key.objectid !== FIRST_CHUNK_TREE_OBJECTID) {
      throw node.f.corrupt(`chunk item with objectid ${item.key.objectid}`, at, 'bad-chunk');
    }
    if (item.key.offset > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw node.f.corrupt(`chunk at ${item.key.offset}`, at, 'too-large');
    }
    const f = node.f.sub(at, item.dataSize, 'btrfs chunk item');
    const chunk = parseChunk(f, Number(item.key.offset), sectorsize, false);
    if (chunk.itemSize !== item.dataSize) {
      throw f.corrupt(
        `chunk item of ${item.dataSize} bytes, ${chunk.itemSize} expected`,
        0,
        'bad-item',
      );
    }
    out.push(chunk);
  }
}

/** Used blocks: the reserved first MiB, superblock copies, tree blocks walked, and extents. */
async function scan(
  source: BlockSource,
  sb: Superblock,
  sysChunks: Chunk[],
  used: Bitmap,
  warnings: Warning[],
  signal: AbortSignal | undefined,
): Promise<{ chunks: ChunkMap }> {
  const bs = sb.sectorsize;
  // Never allocated, and where boot loaders and the primary superblock live.
  markBytes(used, 0, RESERVED_BYTES, bs);
  for (const at of SUPER_MIRRORS) {
    if (at + SUPER_SIZE <= sb.devTotalBytes) markBytes(used, at, SUPER_SIZE, bs);
  }
  // Bootstrap: the sys_chunk_array maps the chunk tree, whose items map everything.
  let map = new ChunkMap(sysChunks, sb.devid, sb.devTotalBytes, bs);
  const r = treeReader(source, sb, () => map, warnings, signal);
  const walked: number[] = [];
  const visit = (logical: number) => walked.push(logical);
  const chunks: Chunk[] = [];
  await walkTree(
    r,
    {
      name: 'chunk',
      logical: sb.chunkRoot,
      level: sb.chunkRootLevel,
      generation: sb.chunkRootGeneration,
      at: SUPER_OFFSET + 0x58,
    },
    (node) => chunkItems(node, bs, chunks),
    visit,
  );
  const full = new ChunkMap(chunks, sb.devid, sb.devTotalBytes, bs);
  // The sys_chunk_array must agree with the chunk tree (same chunks, same places).
  for (const s of sysChunks) {
    const c = full.find(s.logical);
    if (
      !c ||
      c.logical !== s.logical ||
      c.length !== s.length ||
      c.stripes.map((x) => x.offset).join() !== s.stripes.map((x) => x.offset).join()
    ) {
      throw new CorruptError(`sys_chunk_array chunk at ${s.logical} is not in the chunk tree`, {
        structure: SB,
        offset: s.at,
        reason: 'bad-sys-array',
      });
    }
  }
  map = full;

  // The root tree holds the extent tree's ROOT_ITEM.
  let extentRoot: { logical: number; level: number; generation: number; at: number } | undefined;
  await walkTree(
    r,
    {
      name: 'root',
      logical: sb.root,
      level: sb.rootLevel,
      generation: sb.generation,
      at: SUPER_OFFSET + 0x50,
    },
    (node) => {
      for (const item of node.items) {
        if (item.key.objectid !== EXTENT_TREE_OBJECTID || item.key.type !== ROOT_ITEM_KEY) continue;
        const f = node.f.sub(item.dataAt, item.dataSize, 'btrfs extent tree root item');
        f.need(ROOT_ITEM_LEVEL + 1);
        extentRoot = {
          logical: f.u64le(ROOT_ITEM_BYTENR, 'bytenr'),
          level: f.u8(ROOT_ITEM_LEVEL),
          generation: f.u64le(ROOT_ITEM_GENERATION, 'generation'),
          at: f.offset + ROOT_ITEM_BYTENR,
        };
      }
    },
    visit,
  );
  if (!extentRoot) {
    throw new CorruptError('the root tree has no extent tree root item', {
      structure: SB,
      offset: SUPER_OFFSET + 0x50,
      reason: 'no-extent-root',
    });
  }

  // The extent tree: EXTENT_ITEM (objectid start, offset length) and skinny METADATA_ITEM
  // (objectid start, offset level; nodesize long). Everything else (backrefs, block groups) is
  // skipped. Extents are sorted by key, so they must not overlap.
  let end = 0;
  await walkTree(
    r,
    { name: 'extent', ...extentRoot },
    (node) => {
      for (const item of node.items) {
        const type = item.key.type;
        if (type !== EXTENT_ITEM_KEY && type !== METADATA_ITEM_KEY) continue;
        const where = { structure: 'btrfs extent item', offset: node.f.offset + item.keyAt };
        if (
          item.key.objectid > BigInt(Number.MAX_SAFE_INTEGER) ||
          item.key.offset > BigInt(2 ** 40)
        ) {
          throw new CorruptError(`extent (${item.key.objectid}, ${item.key.offset})`, {
            ...where,
            reason: 'too-large',
          });
        }
        const start = Number(item.key.objectid);
        const length = type === EXTENT_ITEM_KEY ? Number(item.key.offset) : sb.nodesize;
        if (length === 0 || start % bs !== 0 || length % bs !== 0) {
          throw new CorruptError(`extent at ${start} of ${length} bytes`, {
            ...where,
            reason: 'bad-extent',
          });
        }
        if (start < end) {
          throw new CorruptError(`extent at ${start} overlaps the one before`, {
            ...where,
            reason: 'overlap',
          });
        }
        end = start + length;
        const chunk = map.find(start);
        if (!chunk || end > chunk.logical + chunk.length) {
          throw new CorruptError(`extent at ${start} of ${length} bytes is in no chunk`, {
            ...where,
            reason: 'unmapped',
          });
        }
        markLogical(used, chunk, start, length, bs);
      }
    },
    visit,
  );
  // Tree blocks walked are in the extent tree too; marked again in case they are not.
  for (const logical of walked) {
    const chunk = map.find(logical)!;
    markLogical(used, chunk, logical, sb.nodesize, bs);
  }
  return { chunks: map };
}

/**
 * The driver for btrfs on one device, SINGLE and DUP profiles. What is used: the first MiB,
 * the superblock copies, and in every copy of its chunk each extent the extent tree lists
 * (file data and tree blocks). The free-space cache and tree are never read. See FORMAT.md.
 */
export const btrfsDriver: FilesystemDriver = {
  name: 'btrfs',

  async probe(source: BlockSource): Promise<ProbeResult | null> {
    try {
      if (source.size < SUPER_OFFSET + SUPER_SIZE) return null;
      const bytes = new Uint8Array(SUPER_SIZE);
      await source.read(SUPER_OFFSET, bytes);
      if (!hasBtrfsMagic(bytes)) return null;
      const sb = parseSuperblock(bytes);
      const result: ProbeResult = { filesystem: 'btrfs', blockSize: sb.sectorsize };
      if (sb.label !== '') result.label = sb.label;
      return result;
    } catch {
      return null;
    }
  },

  async usedBlocks(source: BlockSource, options: UsedBlocksOptions = {}): Promise<UsedBlocks> {
    const { signal } = options;
    signal?.throwIfAborted();
    const bytes = await readStructure(source, SUPER_OFFSET, SUPER_SIZE, SB);
    const sb = parseSuperblock(bytes);
    const bs = sb.sectorsize;
    const blockCount = Math.floor(sb.devTotalBytes / bs);
    const tailOffset = blockCount * bs;
    if (sb.devTotalBytes > source.size) {
      throw new CorruptError(
        `the filesystem needs ${sb.devTotalBytes} bytes but the source has ${source.size}`,
        { structure: SB, offset: SUPER_OFFSET + 0xd1, reason: 'truncated' },
      );
    }
    const warnings: Warning[] = [];
    const facts: UsedBlocks['facts'] = {
      label: sb.label,
      uuid: uuidText(sb.fsid),
      generation: sb.generation,
      features: featureNames(sb),
      sectorSize: bs,
      nodeSize: sb.nodesize,
      totalBytes: sb.totalBytes,
      bytesUsed: sb.bytesUsed,
    };
    const result = (used: Bitmap, doubt: boolean): UsedBlocks => ({
      filesystem: 'btrfs',
      blockSize: bs,
      blockCount,
      used,
      tail: {
        offset: tailOffset,
        length: source.size - tailOffset,
        used: doubt,
        reason: doubt ? 'kept: filesystem metadata in doubt' : 'after end of filesystem',
      },
      warnings,
      facts,
    });
    const allUsed = (e: DiskubeError): UsedBlocks => {
      warnings.push({
        code: 'assumed-used',
        message: e.message,
        reason: e.reason ?? e.code.toLowerCase(),
        ...(e.offset !== undefined ? { offset: e.offset } : {}),
      });
      return result(new Bitmap(blockCount).setAll(), true);
    };
    const absorbable = (e: unknown): e is DiskubeError =>
      DiskubeError.isInstance(e) && (e.code === 'CORRUPT' || e.code === 'DIRTY');

    const used = new Bitmap(blockCount);
    try {
      // The checksum first: flags read from a damaged superblock prove nothing.
      if (!superblockCsumOk(bytes)) {
        throw new FieldReader<BtrfsReason>(bytes, SB, SUPER_OFFSET).corrupt(
          'superblock checksum mismatch',
          0x00,
          'checksum',
        );
      }
      // UNSUPPORTED passes through (never absorbed): the layer above keeps the filesystem whole.
      checkSupported(sb);
      if (sb.logRoot !== 0) {
        // An fsync log awaits replay at the next mount: its blocks and the extents it frees or
        // adds are not in the committed extent tree.
        throw new DirtyFilesystemError(`a log tree at ${sb.logRoot} awaits replay`, {
          structure: SB,
          offset: SUPER_OFFSET + 0x60,
          reason: 'log-tree',
        });
      }
      const sysChunks = parseSysChunkArray(bytes, bs);
      const { chunks } = await scan(source, sb, sysChunks, used, warnings, signal);
      const profiles = new Set<string>();
      for (const c of chunks.chunks) for (const n of profileNames(c.type)) profiles.add(n);
      facts.profiles = [...profiles].sort();
    } catch (e) {
      if (options.assumeUsedOnDoubt && absorbable(e)) return allUsed(e);
      throw e;
    }
    if (tailOffset + bs <= source.size) {
      warnings.push({
        code: 'tail-after-filesystem',
        message: `${source.size - tailOffset} bytes after the end of the filesystem are not part of it and are not kept`,
        offset: tailOffset,
      });
    }
    return result(used, false);
  },
};
