import { type BlockSource, CorruptError, DiskubeError, IoError } from '@diskube/core';
import type { ContainerFormat } from './disk.js';

// Backing chains: an overlay (qcow2 backing file, VMDK delta, differencing VDI/VHD/VHDX) holds
// only what changed; everything it does not hold comes from its parent. Each format's opener
// returns a `ParentLink` describing how its header names the parent; `openContainer` asks the
// caller's `resolveParent` for the file (this package opens no files by name), opens it as a
// container in turn, and checks it is the parent the child was made from.

/** Longest chain followed: deeper is refused (a loop the resolver cannot see ends here too). */
export const MAX_CHAIN_DEPTH = 64;

/** How a child names its parent. */
export interface ParentHint {
  /** `path`: a file name or path as the header writes it; `uuid`: the parent's image UUID (VDI). */
  kind: 'path' | 'uuid';
  /** The format the child says the parent has (qcow2 `backing_fmt`), when it says. */
  format: ContainerFormat | undefined;
  /** The file the child is asking for: the resolver opens paths relative to it. */
  child: BlockSource;
}

/**
 * Opens the parent a child names: `hint` is the name (or UUID) exactly as the child stores it,
 * with Windows separators turned into `/` for VHD and VHDX. Reject with an `IoError` when there
 * is no such file (it becomes `missing-parent`, naming the file), or any other `DiskubeError`
 * to refuse it (a path outside the allowed directories).
 */
export type ResolveParent = (hint: string, context: ParentHint) => Promise<BlockSource>;

/** One layer of a chain, overlay first. */
export interface ChainLayer {
  format: ContainerFormat;
  /** The name its child gives it (the backing file name, parent hint or UUID); null for the top. */
  name: string | null;
  /** Length of the layer's file in bytes (what it takes on the host). */
  fileSize: number;
  /** Size of the layer's virtual disk in bytes (a parent may be smaller than its child). */
  virtualSize: number;
  /**
   * What the format records to identify this image to its children (VMDK CID, VDI UUIDs, VHD
   * unique id, VHDX data write GUID); empty for qcow2 and raw, which record none.
   */
  identity: LayerIdentity;
}

/** What identifies a layer to its children (checked against what a child recorded). */
export type LayerIdentity = Partial<
  Record<'cid' | 'uuid' | 'modification' | 'uniqueId' | 'dataWriteGuid', string>
>;

/** A child's link to its parent, as its opener read it from the header. */
export interface ParentLink {
  /** Names to try, in order (VHD: relative locator, absolute locator, unicode name). */
  hints: string[];
  kind: 'path' | 'uuid';
  /** Expected parent format; `raw` opens the parent without probing it. */
  format: ContainerFormat | undefined;
  /** Identity fields the parent must have, with the header field they come from. */
  expect: { field: keyof LayerIdentity; value: string; what: string }[];
  /** The refusal when no resolver was given (today's UNSUPPORTED `backing-file`). */
  refusal: () => DiskubeError;
  structure: string;
}

/** Ask the resolver for each hint in turn; all missing → IO `missing-parent` naming them. */
export async function resolveLink(
  link: ParentLink,
  resolve: ResolveParent,
  child: BlockSource,
): Promise<{ source: BlockSource; name: string }> {
  const errors: unknown[] = [];
  for (const hint of link.hints) {
    try {
      return {
        source: await resolve(hint, { kind: link.kind, format: link.format, child }),
        name: hint,
      };
    } catch (error) {
      errors.push(error);
    }
  }
  // A refusal (a path outside the allowed directories) says more than "missing".
  const refusal = errors.find((e) => DiskubeError.isInstance(e) && e.code !== 'IO');
  if (refusal) throw refusal;
  const names = link.hints.map((h) => `"${h}"`).join(' or ');
  throw new IoError(
    `parent ${link.kind === 'uuid' ? 'image with UUID ' : ''}${names} not found${
      errors[0] instanceof Error ? ` (${errors[0].message})` : ''
    }`,
    { structure: link.structure, reason: 'missing-parent', cause: errors[0] },
  );
}

/** The parent must have the format and identity the child recorded. */
export function checkParent(
  link: ParentLink,
  name: string,
  format: ContainerFormat,
  identity: LayerIdentity,
): void {
  if (link.format !== undefined && link.format !== format) {
    throw new CorruptError(`parent "${name}" is ${format}, but its child says ${link.format}`, {
      structure: link.structure,
      reason: 'parent-mismatch',
    });
  }
  for (const { field, value, what } of link.expect) {
    const got = identity[field];
    if (got === undefined || got.toLowerCase() !== value.toLowerCase()) {
      throw new CorruptError(
        `parent "${name}" has ${what} ${got ?? '(none)'}, but its child expects ${value}: it is not the image the child was made from`,
        { structure: link.structure, reason: 'parent-mismatch' },
      );
    }
  }
}
