import { opendir, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ResolveParent } from '@diskube/container';
import { type BlockSource, FieldReader, UnsupportedError } from '@diskube/core';
import { openFileSource } from '@diskube/core/node';
import { type DiskImage, type OpenImageOptions, openImage } from '../image.js';
import { type Inspection, inspectImage } from '../inspect.js';
import type { MapOptions } from '../map.js';

export interface OpenImageFileOptions
  extends Omit<OpenImageOptions, 'resolveExtent' | 'resolveParent'> {
  /**
   * Directories where an overlay's parents may also be (an OpenStack `_base` directory, say):
   * a backing file named by an absolute path, or with `..` or a directory part, is opened only
   * when its real path lies inside one of them. VDI parents (named by UUID) are looked for
   * beside the child, then in these directories.
   */
  allowBackingDir?: string | readonly string[];
}

/** A file name that stays in the directory it is read from: no absolute path, `..` or `/`. */
function isBeside(name: string): boolean {
  return !isAbsolute(name) && !name.includes('..') && basename(name) === name.replace(/^\.\//, '');
}

/** Real path of `path`, or the resolved path when it does not exist (yet). */
async function realOrResolved(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return resolve(path);
  }
}

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

/** Most directory entries looked at when searching for a VDI parent by UUID. */
const MAX_UUID_SEARCH = 4096;

/** The uuidCreate of a VDI file, or undefined when `path` is no VDI. */
async function vdiUuid(path: string): Promise<string | undefined> {
  let source: BlockSource | undefined;
  try {
    source = await openFileSource(path);
    if (source.size < 512) return undefined;
    const head = new Uint8Array(512);
    await source.read(0, head);
    const f = new FieldReader(head, 'VDI header');
    return f.u32le(0x40) === 0xbeda107f ? f.guid(0x188) : undefined;
  } catch {
    return undefined;
  } finally {
    await source?.close?.();
  }
}

/**
 * Opens an image file and the container inside it. Extent files a VMDK descriptor names are
 * opened beside the descriptor and may not leave its directory: a name that is absolute, holds
 * `..` or a directory part is refused as UNSUPPORTED (reason `extent-path`), so a crafted
 * descriptor cannot make a backup read `/etc/shadow`. An overlay's parents follow the same
 * rule, relative to their child's file, unless their real path lies in an `allowBackingDir`
 * (else UNSUPPORTED, reason `backing-path`); a VDI parent is the `.vdi` file beside its child
 * (or in an allowed directory) whose UUID the child names.
 */
export async function openImageFile(
  path: string,
  options: OpenImageFileOptions = {},
): Promise<DiskImage> {
  const { allowBackingDir, ...rest } = options;
  const allowed = await Promise.all(
    (typeof allowBackingDir === 'string' ? [allowBackingDir] : (allowBackingDir ?? [])).map(
      realOrResolved,
    ),
  );
  const file = await openFileSource(path);
  // Each source's path (for names relative to it), and one source per real path, so that a
  // chain coming back to a file returns the same source and the container sees the loop.
  const paths = new Map<BlockSource, string>([[file, path]]);
  const byRealPath = new Map<string, BlockSource>([[await realOrResolved(path), file]]);
  const open = async (target: string): Promise<BlockSource> => {
    const real = await realOrResolved(target);
    const known = byRealPath.get(real);
    if (known) return known;
    const source = await openFileSource(target);
    byRealPath.set(real, source);
    paths.set(source, target);
    return source;
  };
  // The chain's files in the order the container asks for them: each parent after its child.
  const files = [path];
  const resolveParent: ResolveParent = async (hint, context) => {
    const source = await findParent(hint, context);
    const file = paths.get(source);
    if (file !== undefined) files.push(file);
    return source;
  };
  const findParent: ResolveParent = async (hint, { kind, child }) => {
    const childDir = dirname(paths.get(child) ?? path);
    if (kind === 'uuid') {
      for (const dir of [childDir, ...allowed]) {
        let seen = 0;
        for await (const entry of await opendir(dir)) {
          if (++seen > MAX_UUID_SEARCH) break;
          if (!entry.isFile() || !entry.name.toLowerCase().endsWith('.vdi')) continue;
          const candidate = join(dir, entry.name);
          if ((await vdiUuid(candidate)) === hint) return open(candidate);
        }
      }
      throw new Error(`no .vdi file with UUID ${hint} in ${[childDir, ...allowed].join(', ')}`);
    }
    if (isBeside(hint)) return open(join(childDir, hint));
    const target = isAbsolute(hint) ? hint : join(childDir, hint);
    const real = await realOrResolved(target);
    if (!allowed.some((dir) => isInside(real, dir))) {
      throw new UnsupportedError(
        `backing file "${hint}" is outside its overlay's directory; allow its directory with --allow-backing-dir (allowBackingDir)`,
        { reason: 'backing-path' },
      );
    }
    return open(target);
  };
  const image = await openImage(file, {
    ...rest,
    async resolveExtent(name) {
      if (!isBeside(name)) {
        throw new UnsupportedError(`VMDK extent "${name}" is outside the descriptor's directory`, {
          reason: 'extent-path',
        });
      }
      return openFileSource(join(dirname(path), name));
    },
    resolveParent,
  });
  return { ...image, files };
}

/** `inspectImage` of an image file: opens it, describes it, closes it. */
export async function inspectImageFile(
  path: string,
  options: OpenImageFileOptions & MapOptions = {},
): Promise<Inspection> {
  const image = await openImageFile(path, options);
  try {
    return await inspectImage(image, options);
  } finally {
    await image.close();
  }
}
