import { CorruptError } from '@diskube/core';
import { compareKeys, firstKey, MAX_LEVEL, type Node, parseNode } from './node.js';

export interface TreeReader {
  /**
   * Copy `copy` (0, or 1 for DUP) of the node (nodesize bytes) at logical `logical`, and the
   * absolute offset it came from; null when the chunk has no such copy.
   */
  read(
    logical: number,
    structure: string,
    copy: number,
  ): Promise<{ bytes: Uint8Array; offset: number } | null>;
  /** Told when a first copy fails its checks and the second copy is used, as the kernel does. */
  badCopy(error: CorruptError): void;
  /** The uuid in every tree block header. */
  uuid: Uint8Array;
  /** Most tree blocks one walk may visit (the device holds no more). */
  maxNodes: number;
  signal: AbortSignal | undefined;
}

export interface TreeRoot {
  name: string;
  logical: number;
  level: number;
  generation: number;
  /** Absolute offset of the field that points at the root, for errors. */
  at: number;
}

/**
 * Walks a whole tree depth-first from its root, calling `leaf` for each leaf in key order and
 * `visited` for every block (logical address). Bounded: level below MAX_LEVEL, each child one
 * level down, every block visited once, at most `maxNodes` blocks; a child's first key must be
 * its pointer's key.
 */
export async function walkTree(
  r: TreeReader,
  root: TreeRoot,
  leaf: (node: Node) => void,
  visited: (logical: number) => void,
): Promise<void> {
  const structure = `btrfs ${root.name} tree`;
  if (root.level >= MAX_LEVEL) {
    throw new CorruptError(`${root.name} tree root level ${root.level}`, {
      structure,
      offset: root.at,
      reason: 'bad-level',
    });
  }
  const seen = new Set<number>();
  const stack: Array<{
    logical: number;
    level: number;
    generation: number;
    key?: Node['ptrs'][number]['key'];
  }> = [{ logical: root.logical, level: root.level, generation: root.generation }];
  while (stack.length > 0) {
    r.signal?.throwIfAborted();
    const next = stack.pop()!;
    if (seen.has(next.logical)) {
      throw new CorruptError(`${root.name} tree reaches block ${next.logical} twice`, {
        structure,
        offset: root.at,
        reason: 'tree-loop',
      });
    }
    if (seen.size >= r.maxNodes) {
      throw new CorruptError(`${root.name} tree has more than ${r.maxNodes} blocks`, {
        structure,
        offset: root.at,
        reason: 'too-many-nodes',
      });
    }
    seen.add(next.logical);
    const want = {
      logical: next.logical,
      level: next.level,
      generation: next.generation,
      uuid: r.uuid,
    };
    const primary = (await r.read(next.logical, structure, 0))!;
    let node: Node;
    try {
      node = parseNode(primary.bytes, primary.offset, want);
    } catch (e) {
      // A DUP block whose first copy fails its checks is read from the second, as the kernel
      // does; only when both fail is the tree corrupt (the first copy's error is reported).
      if (!CorruptError.isInstance(e)) throw e;
      const mirror = await r.read(next.logical, structure, 1);
      if (!mirror) throw e;
      try {
        node = parseNode(mirror.bytes, mirror.offset, want);
      } catch {
        throw e;
      }
      r.badCopy(e);
    }
    visited(next.logical);
    const first = firstKey(node);
    if (next.key && (first === undefined || compareKeys(first, next.key) !== 0)) {
      throw node.f.corrupt(
        `first key of block ${next.logical} differs from its pointer's`,
        0x65,
        'bad-key-order',
      );
    }
    if (node.level === 0) {
      leaf(node);
      continue;
    }
    // Children pushed last-first so they are visited in key order.
    for (let i = node.ptrs.length - 1; i >= 0; i--) {
      const p = node.ptrs[i]!;
      stack.push({
        logical: p.blockptr,
        level: node.level - 1,
        generation: p.generation,
        key: p.key,
      });
    }
  }
}
