import type { ContentOp, FilesystemSpec, Generator, Pos } from './ast.js';
import { generate, overwrite, resize, type Segment, segmentsLength } from './content.js';
import { SpecError } from './errors.js';

/**
 * One step a filesystem builder performs, in spec order. Modifying steps carry both the change
 * (for tools that write in place) and the file's whole new content (for tools that can only
 * rewrite a file).
 */
export type Action =
  | { a: 'mkdir'; path: string }
  | { a: 'write'; path: string; content: Segment[] }
  | {
      a: 'pwrite';
      path: string;
      offset: number;
      data: Segment[];
      oldSize: number;
      content: Segment[];
    }
  | { a: 'truncate'; path: string; size: number; oldSize: number; content: Segment[] }
  | { a: 'rm'; path: string; dir: boolean };

export interface Plan {
  prefill?: Generator;
  actions: Action[];
  /** Regular files that exist at the end, sorted by path. */
  files: Array<{ path: string; content: Segment[] }>;
  /** Directories that exist at the end (created by the spec), sorted. */
  dirs: string[];
}

type Entry = { kind: 'dir' } | { kind: 'file'; content: Segment[] };

const parentOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';

/** Deterministic size in [1, 3072] for file `i` of a `files … small` line. */
function smallSize(seed: number, i: number): number {
  let h = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(seed + 0x632be5ab, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h ^= h >>> 12;
  return ((h >>> 0) % 3072) + 1;
}

/**
 * Replays the content lines on an in-memory tree: validates them (a file must exist before it
 * is changed…) and turns them into builder actions plus the final file list for the manifest.
 * `caseInsensitive` is for FAT, where `/A` and `/a` are the same name.
 */
export function planContent(fs: FilesystemSpec, caseInsensitive = false): Plan {
  const tree = new Map<string, Entry & { path: string }>();
  const key = (p: string) => (caseInsensitive ? p.toUpperCase() : p);
  const get = (p: string) => tree.get(key(p));
  const actions: Action[] = [];
  let prefill: Generator | undefined;

  const err = (pos: Pos, msg: string): never => {
    throw new SpecError(msg, pos.line, pos.column);
  };

  const mkdirs = (dir: string, pos: Pos) => {
    if (dir === '/') return;
    const e = get(dir);
    if (e?.kind === 'dir') return;
    if (e) err(pos, `${dir} is a file, not a directory`);
    mkdirs(parentOf(dir), pos);
    tree.set(key(dir), { kind: 'dir', path: dir });
    actions.push({ a: 'mkdir', path: dir });
  };

  const existingFile = (path: string, pos: Pos, verb: string): Segment[] => {
    const e = get(path);
    if (!e) return err(pos, `cannot ${verb} ${path}: no such file`);
    if (e.kind !== 'file') return err(pos, `cannot ${verb} ${path}: it is a directory`);
    return e.content;
  };

  const createFile = (path: string, content: Segment[], pos: Pos) => {
    if (get(path))
      err(pos, `${path} already exists (use overwrite, append or truncate to change it)`);
    mkdirs(parentOf(path), pos);
    tree.set(key(path), { kind: 'file', content, path });
    actions.push({ a: 'write', path, content });
  };

  const remove = (path: string) => {
    const e = get(path)!;
    if (e.kind === 'dir') {
      const prefix = `${key(path)}/`;
      const children = [...tree.keys()].filter(
        (k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/'),
      );
      for (const c of children.sort()) remove(tree.get(c)!.path);
    }
    tree.delete(key(path));
    actions.push({ a: 'rm', path: e.path, dir: e.kind === 'dir' });
  };

  for (const op of fs.content as ContentOp[]) {
    switch (op.op) {
      case 'prefill':
        prefill = op.gen;
        break;
      case 'dir':
        mkdirs(op.path, op.pos);
        break;
      case 'file':
        createFile(op.path, generate(op.gen, op.size), op.pos);
        break;
      case 'files': {
        mkdirs(op.dir, op.pos);
        const width = Math.max(4, String(op.count).length);
        let streamAt = 0;
        for (let i = 0; i < op.count; i++) {
          const size = op.size === 'small' ? smallSize(op.seed, i) : op.size;
          const content: Segment[] =
            size === 0
              ? []
              : [
                  {
                    kind: 'random',
                    key: `files:${op.seed}:${op.dir}`,
                    start: streamAt,
                    length: size,
                  },
                ];
          streamAt += size;
          createFile(`${op.dir}/f${String(i).padStart(width, '0')}`, content, op.pos);
        }
        break;
      }
      case 'delete': {
        if (!get(op.path)) err(op.pos, `cannot delete ${op.path}: no such file or directory`);
        remove(op.path);
        break;
      }
      case 'append': {
        const cur = existingFile(op.path, op.pos, 'append to');
        const data = generate(op.gen, op.size);
        const content = overwrite(cur, segmentsLength(cur), data);
        setContent(op.path, content);
        const oldSize = segmentsLength(cur);
        actions.push({ a: 'pwrite', path: op.path, offset: oldSize, data, oldSize, content });
        break;
      }
      case 'overwrite': {
        const cur = existingFile(op.path, op.pos, 'overwrite');
        const data = generate(op.gen, op.size);
        const content = overwrite(cur, op.offset, data);
        setContent(op.path, content);
        const oldSize = segmentsLength(cur);
        actions.push({ a: 'pwrite', path: op.path, offset: op.offset, data, oldSize, content });
        break;
      }
      case 'truncate': {
        const cur = existingFile(op.path, op.pos, 'truncate');
        const content = resize(cur, op.size);
        setContent(op.path, content);
        const oldSize = segmentsLength(cur);
        actions.push({ a: 'truncate', path: op.path, size: op.size, oldSize, content });
        break;
      }
    }
  }

  function setContent(path: string, content: Segment[]) {
    const e = get(path)!;
    tree.set(key(path), { kind: 'file', content, path: e.path });
  }

  const files: Plan['files'] = [];
  const dirs: string[] = [];
  for (const e of tree.values()) {
    if (e.kind === 'file') files.push({ path: e.path, content: e.content });
    else dirs.push(e.path);
  }
  files.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  dirs.sort();
  return prefill ? { prefill, actions, files, dirs } : { actions, files, dirs };
}
