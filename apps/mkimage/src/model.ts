import type { ContentOp, FilesystemSpec, Generator, Pos } from './ast.js';
import { generate, overwrite, resize, type Segment, segmentsLength, slice } from './content.js';
import { SpecError } from './errors.js';

/**
 * One step a filesystem builder performs, in spec order. Modifying steps carry both the change
 * (for tools that write in place) and the file's whole new content (for tools that can only
 * rewrite a file).
 */
export type Action =
  | { a: 'mkdir'; path: string }
  | {
      a: 'write';
      path: string;
      content: Segment[];
      /** Set on spacer files of `file … fragments=N`: the file (and its size) being split. */
      spacerAfter?: { path: string; size: number };
    }
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
  /** Mark the filesystem as not cleanly unmounted. */
  dirty: boolean;
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
  let dirty = false;

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
      case 'dirty':
        dirty = true;
        break;
      case 'dir':
        mkdirs(op.path, op.pos);
        break;
      case 'file': {
        const content = generate(op.gen, op.size);
        if (!op.fragments) {
          createFile(op.path, content, op.pos);
          break;
        }
        // Fragmented file: write it piece by piece with a 4K spacer file allocated after each
        // piece, so the next piece cannot continue the previous run; then drop the spacers,
        // leaving holes of free space between the fragments.
        const piece = Math.max(4096, Math.ceil(op.size / op.fragments / 4096) * 4096);
        createFile(op.path, slice(content, 0, Math.min(piece, op.size)), op.pos);
        const spacers: string[] = [];
        for (let at = piece; at < op.size; at += piece) {
          const spacer = `/.mkimage-spacer-${op.pos.line}-${spacers.length}`;
          createFile(spacer, [{ kind: 'zeros', length: 4096 }], op.pos);
          const w = actions[actions.length - 1]!;
          if (w.a === 'write') w.spacerAfter = { path: op.path, size: at };
          spacers.push(spacer);
          const end = Math.min(op.size, at + piece);
          actions.push({
            a: 'pwrite',
            path: op.path,
            offset: at,
            data: slice(content, at, end),
            oldSize: at,
            content: slice(content, 0, end),
          });
        }
        setContent(op.path, content);
        for (const sp of spacers) remove(sp);
        break;
      }
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
        if (!/[*?[]/.test(op.path)) {
          if (!get(op.path)) err(op.pos, `cannot delete ${op.path}: no such file or directory`);
          remove(op.path);
          break;
        }
        // Wildcards match within one path component: `*`, `?` and classes like `[13579]`, so
        // `delete /frag/f???[13579]` thins a `files` directory and leaves fragmented free space.
        const re = globToRegExp(key(op.path));
        const matches = [...tree.keys()].filter((k) => re.test(k)).sort();
        if (matches.length === 0) err(op.pos, `cannot delete ${op.path}: nothing matches`);
        for (const k of matches) {
          const e = tree.get(k);
          if (e) remove(e.path); // may already be gone with a matched parent directory
        }
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
  return prefill ? { prefill, actions, files, dirs, dirty } : { actions, files, dirs, dirty };
}

/** Shell-style glob (`*`, `?`, `[…]`, `[!…]`) for one path, never crossing `/`. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    const close = c === '[' ? glob.indexOf(']', i + 2) : -1;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (close > 0 && /^!?[\w.-]+$/.test(glob.slice(i + 1, close))) {
      const body = glob.slice(i + 1, close);
      out += body.startsWith('!') ? `[^/${body.slice(1)}]` : `[${body}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}
