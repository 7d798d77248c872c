import type {
  ContentOp,
  DiskSpec,
  ExtendedSpec,
  FilesystemSpec,
  FsType,
  Generator,
  PartitionSpec,
  Pos,
  VolumeSpec,
} from './ast.js';
import { SpecError } from './errors.js';
import { builderOf, FS_TYPES } from './fs/registry.js';
import { type SpecLine, type Token, tokenize } from './lexer.js';
import { intIn as intCheck, type OptionCheck, textMax as textCheck } from './options.js';
import { parseSize } from './size.js';

interface Node {
  l: SpecLine;
  children: Node[];
}

/** Groups lines into a tree by indentation: deeper lines are children of the line above. */
function buildTree(lines: SpecLine[]): Node[] {
  const roots: Node[] = [];
  const stack: Array<{ node: Node; indent: number }> = [];
  for (const l of lines) {
    while (stack.length > 0 && stack[stack.length - 1]!.indent >= l.indent) stack.pop();
    const node: Node = { l, children: [] };
    const parent = stack[stack.length - 1];
    const siblings = parent ? parent.node.children : roots;
    const first = siblings[0];
    if (first && first.l.indent !== l.indent) {
      throw new SpecError(
        `indentation (${l.indent}) does not match the line above at the same level (${first.l.indent})`,
        l.line,
        l.indent + 1,
      );
    }
    siblings.push(node);
    stack.push({ node, indent: l.indent });
  }
  return roots;
}

const pos = (l: SpecLine, t?: Token): Pos => ({
  line: l.line,
  column: t ? t.column : l.indent + 1,
});
const fail = (l: SpecLine, t: Token | undefined, msg: string): never => {
  throw new SpecError(msg, l.line, t ? t.column : l.indent + 1);
};

/** Positional arguments and `key=value` / bare-flag options of one line. */
class Args {
  private i = 1;
  constructor(readonly l: SpecLine) {}

  get head(): Token {
    return this.l.tokens[0]!;
  }

  peek(): Token | undefined {
    return this.l.tokens[this.i];
  }

  next(what: string): Token {
    const t = this.l.tokens[this.i];
    if (!t) {
      const last = this.l.tokens[this.l.tokens.length - 1]!;
      throw new SpecError(
        `'${this.head.text}' expects ${what}`,
        this.l.line,
        last.column + last.text.length + (last.quoted ? 2 : 0),
      );
    }
    this.i++;
    return t;
  }

  size(what: string, allowRest = false): number | 'rest' {
    const t = this.next(what);
    if (allowRest && t.text === 'rest' && !t.quoted) return 'rest';
    const n = t.quoted ? null : parseSize(t.text);
    if (n === null) fail(this.l, t, `expected ${what}, got '${t.text}'`);
    return n!;
  }

  bytes(what: string): number {
    return this.size(what) as number;
  }

  path(what = 'an absolute path'): string {
    const t = this.next(what);
    return checkPath(this.l, t);
  }

  /** Remaining tokens as options; `allowed` maps each key to a validator (null = bare flag). */
  options(allowed: Record<string, ((v: string, t: Token) => void) | null>): Record<string, string> {
    const out: Record<string, string> = {};
    for (let t = this.peek(); t; t = this.peek()) {
      this.i++;
      const eq = t.text.indexOf('=');
      const key = eq < 0 ? t.text : t.text.slice(0, eq);
      const value = eq < 0 ? '' : t.text.slice(eq + 1);
      if (!(key in allowed)) {
        const keys = Object.keys(allowed);
        fail(
          this.l,
          t,
          keys.length === 0
            ? `unexpected '${t.text}'`
            : `unknown option '${key}' (expected one of: ${keys.join(', ')})`,
        );
      }
      if (key in out) fail(this.l, t, `option '${key}' given twice`);
      const check = allowed[key];
      if (check === null && eq >= 0) fail(this.l, t, `'${key}' is a flag and takes no value`);
      if (check && eq < 0) fail(this.l, t, `option '${key}' needs a value: ${key}=…`);
      if (check) check(value, t);
      out[key] = value;
    }
    return out;
  }

  end(): void {
    const t = this.peek();
    if (t) fail(this.l, t, `unexpected '${t.text}'`);
  }
}

function checkPath(l: SpecLine, t: Token): string {
  const p = t.text;
  if (!p.startsWith('/')) fail(l, t, `path must be absolute: '${p}'`);
  if (p === '/') fail(l, t, 'path must name something below /');
  // Paths travel through debugfs command files, mtools arguments and TAB-separated helper input.
  const bad = [...p].some((c) => c.charCodeAt(0) < 0x20 || c === '"' || c === '\\');
  if (bad) fail(l, t, 'path must not contain control characters, " or \\');
  const parts = p.slice(1).split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') {
      fail(l, t, `path has an empty, '.' or '..' component: '${p}'`);
    }
    if (Buffer.byteLength(part) > 255) fail(l, t, 'path component longer than 255 bytes');
  }
  return p;
}

/** Binds a builder-style check to a spec line: its message becomes a SpecError at the value. */
const bind =
  (check: OptionCheck) =>
  (l: SpecLine) =>
  (v: string, t: Token): void => {
    const message = check(v);
    if (message !== undefined) fail(l, t, message);
  };

const intIn = (min: number, max: number, what: string) => bind(intCheck(min, max, what));
const textMax = (max: number, what: string) => bind(textCheck(max, what));

function fsType(l: SpecLine, t: Token): FsType {
  if (!(FS_TYPES as readonly string[]).includes(t.text)) {
    fail(l, t, `unknown filesystem type '${t.text}' (expected one of: ${FS_TYPES.join(', ')})`);
  }
  return t.text as FsType;
}

function bindOptions(l: SpecLine, type: FsType) {
  const out: Record<string, ((v: string, t: Token) => void) | null> = {};
  for (const [k, v] of Object.entries(builderOf(type)!.options)) out[k] = v && bind(v)(l);
  return out;
}

/** `random [seed=N]`, `text`, `zeros` or a quoted literal (then `size` is its byte length). */
type Validators = Record<string, ((v: string, t: Token) => void) | null>;

/**
 * `random [seed=N]`, `text`, `zeros` or a quoted literal, then any `extra` options
 * (returned in `opts`).
 */
function generator(
  a: Args,
  what: string,
  extra: Validators = {},
): { gen: Generator; opts: Record<string, string> } {
  const t = a.next(what);
  if (t.quoted) return { gen: { kind: 'literal', text: t.text }, opts: a.options(extra) };
  if (t.text === 'random') {
    const seed = (v: string, st: Token) => intIn(0, 2 ** 32 - 1, 'seed')(a.l)(v, st);
    const { seed: s, ...opts } = a.options({ seed, ...extra });
    return { gen: { kind: 'random', seed: s === undefined ? 0 : Number(s) }, opts };
  }
  if (t.text === 'text' || t.text === 'zeros')
    return { gen: { kind: t.text }, opts: a.options(extra) };
  return fail(a.l, t, `expected random, text, zeros or a "string", got '${t.text}'`);
}

/** `"literal"` or `SIZE GENERATOR`, then `extra` options. */
function sizedContent(
  a: Args,
  extra: Validators = {},
): { size: number; gen: Generator; opts: Record<string, string> } {
  const t = a.peek();
  if (t?.quoted) {
    a.next('content');
    const opts = a.options(extra);
    return { size: Buffer.byteLength(t.text), gen: { kind: 'literal', text: t.text }, opts };
  }
  const size = a.bytes('a size or a "string"');
  const r = generator(a, 'random, text or zeros', extra);
  if (r.gen.kind === 'literal') fail(a.l, undefined, 'a literal takes no size');
  return { size, ...r };
}

function contentOp(n: Node, type: FsType, seen: ContentOp[]): ContentOp {
  const a = new Args(n.l);
  const l = n.l;
  const head = a.head;
  if (n.children.length > 0) fail(n.children[0]!.l, undefined, `'${head.text}' takes no children`);
  const p = pos(l, head);
  const accepts = builderOf(type)!.content;
  if (accepts === 'none') fail(l, head, `${type} takes no content`);
  if (accepts === 'prefill' && head.text !== 'prefill') {
    fail(l, head, `${type} takes only prefill (random seed=N or zeros)`);
  }
  switch (head.text) {
    case 'prefill': {
      if (seen.length > 0) fail(l, head, 'prefill must come before any other content line');
      const { gen } = generator(a, 'random or zeros');
      if (gen.kind !== 'random' && gen.kind !== 'zeros') {
        fail(l, head, 'prefill takes random seed=N or zeros');
      }
      return { op: 'prefill', gen, pos: p };
    }
    case 'dir': {
      const path = a.path();
      a.end();
      return { op: 'dir', path, pos: p };
    }
    case 'file': {
      const path = a.path();
      const { size, gen, opts } = sizedContent(a, {
        fragments: (v, t) => intIn(2, 100_000, 'fragments')(l)(v, t),
      });
      if (opts.fragments === undefined) return { op: 'file', path, size, gen, pos: p };
      return { op: 'file', path, size, gen, fragments: Number(opts.fragments), pos: p };
    }
    case 'files': {
      const dir = a.path('a directory path');
      const ct = a.next('a file count');
      if (!/^\d+$/.test(ct.text) || Number(ct.text) < 1 || Number(ct.text) > 1_000_000) {
        fail(l, ct, 'file count must be an integer from 1 to 1000000');
      }
      const st = a.peek();
      let size: number | 'small';
      if (st && st.text === 'small' && !st.quoted) {
        a.next('size');
        size = 'small';
      } else size = a.bytes("'small' or a size per file");
      const o = a.options({ seed: (v, t) => intIn(0, 2 ** 32 - 1, 'seed')(l)(v, t) });
      return {
        op: 'files',
        dir,
        count: Number(ct.text),
        size,
        seed: o.seed === undefined ? 0 : Number(o.seed),
        pos: p,
      };
    }
    case 'delete': {
      const path = a.path();
      a.end();
      return { op: 'delete', path, pos: p };
    }
    case 'append': {
      const path = a.path();
      const { size, gen } = sizedContent(a);
      return { op: 'append', path, size, gen, pos: p };
    }
    case 'truncate': {
      const path = a.path();
      const size = a.bytes('a new size');
      a.end();
      return { op: 'truncate', path, size, pos: p };
    }
    case 'overwrite': {
      const path = a.path();
      const offset = a.bytes('a byte offset');
      const { size, gen } = sizedContent(a);
      return { op: 'overwrite', path, offset, size, gen, pos: p };
    }
    case 'dirty':
      a.end();
      return { op: 'dirty', pos: p };
    default:
      return fail(
        l,
        head,
        `unknown content line '${head.text}' (expected prefill, dir, file, files, delete, append, truncate, overwrite or dirty)`,
      );
  }
}

const LV_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,63}$/;

/** `lv NAME SIZE TYPE [segments=N] [stripes=N] [OPTIONS]`, with the filesystem's content below. */
function volume(n: Node, seen: VolumeSpec[]): VolumeSpec {
  const a = new Args(n.l);
  const l = n.l;
  if (a.head.text !== 'lv') fail(l, a.head, `a volume group holds only 'lv NAME SIZE TYPE' lines`);
  const nameTok = a.next('a volume name');
  if (!LV_NAME.test(nameTok.text) || seen.some((v) => v.name === nameTok.text)) {
    fail(l, nameTok, `volume name must be 1 to 64 of A-Z a-z 0-9 + _ . - and unique`);
  }
  const sizeTok = a.peek();
  const size = a.bytes('a volume size');
  if (size < 1 << 20) fail(l, sizeTok, 'a volume is at least 1M');
  const typeTok = a.next('a filesystem type');
  const type = fsType(l, typeTok);
  if (builderOf(type)!.content === 'volumes') fail(l, typeTok, `${type} cannot be nested`);
  const layout = {
    segments: (v: string, t: Token) => intIn(1, 64, 'segments')(l)(v, t),
    stripes: (v: string, t: Token) => intIn(1, 16, 'stripes')(l)(v, t),
  };
  const all = a.options({ ...bindOptions(l, type), ...layout });
  const { segments = '1', stripes = '1', ...options } = all;
  if (segments !== '1' && stripes !== '1') fail(l, a.head, 'segments= and stripes= do not combine');
  const p = pos(l, a.head);
  return {
    name: nameTok.text,
    size,
    segments: Number(segments),
    stripes: Number(stripes),
    filesystem: filesystemBody(type, options, p, n.children),
    pos: p,
  };
}

function filesystemBody(
  type: FsType,
  options: Record<string, string>,
  p: Pos,
  children: Node[],
): FilesystemSpec {
  if (builderOf(type)!.content === 'volumes') {
    const volumes: VolumeSpec[] = [];
    for (const c of children) volumes.push(volume(c, volumes));
    return { type, options, content: [], volumes, pos: p };
  }
  const content: ContentOp[] = [];
  for (const c of children) {
    if (content[content.length - 1]?.op === 'dirty') {
      fail(c.l, c.l.tokens[0], "'dirty' must be the last content line");
    }
    content.push(contentOp(c, type, content));
  }
  return { type, options, content, pos: p };
}

const MBR_TYPE = /^(0x)?[0-9a-f]{1,2}$/i;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const GPT_TYPE_ALIASES: Record<string, string> = {
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  swap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  msdata: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  efi: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  bios: '21686148-6449-6E6F-744E-656564454649',
  lvm: 'E6D6D379-F507-44C2-A23C-238F2A3DF928',
};

function partition(n: Node, table: 'mbr' | 'gpt', logical: boolean): PartitionSpec {
  const a = new Args(n.l);
  const l = n.l;
  const size = a.size('a size or rest', true);
  const type = fsType(l, a.next('a filesystem type'));
  const fsValidators = bindOptions(l, type);
  const partValidators: Record<string, ((v: string, t: Token) => void) | null> = {
    type: (v, t) => {
      if (table === 'mbr' ? !MBR_TYPE.test(v) : !(GUID.test(v) || v in GPT_TYPE_ALIASES)) {
        fail(
          l,
          t,
          table === 'mbr'
            ? 'MBR type must be a hex byte like 83 or 0x07'
            : `GPT type must be a GUID or one of: ${Object.keys(GPT_TYPE_ALIASES).join(', ')}`,
        );
      }
    },
  };
  if (table === 'gpt') partValidators.name = textMax(36, 'GPT name')(l);
  if (table === 'mbr' && !logical) partValidators.bootable = null;
  for (const k of Object.keys(partValidators)) {
    if (k in fsValidators) throw new Error(`option clash ${k}`);
  }
  const all = a.options({ ...fsValidators, ...partValidators });
  const attrs: PartitionSpec['attrs'] = {};
  const options: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) {
    if (k === 'type') attrs.type = v;
    else if (k === 'name') attrs.name = v;
    else if (k === 'bootable') attrs.bootable = true;
    else options[k] = v;
  }
  const p = pos(l, a.head);
  return {
    kind: 'partition',
    size,
    attrs,
    filesystem: filesystemBody(type, options, p, n.children),
    pos: p,
  };
}

/** Parses spec text into a validated AST. Throws `SpecError` with line and column. */
export function parseSpec(text: string): DiskSpec {
  const roots = buildTree(tokenize(text));
  if (roots.length === 0) throw new SpecError("empty spec: expected 'disk <size> [mbr|gpt]'", 1, 1);
  if (roots.length > 1) fail(roots[1]!.l, undefined, 'only one disk per spec');
  const root = roots[0]!;
  const a = new Args(root.l);
  if (a.head.text !== 'disk') fail(root.l, a.head, `expected 'disk', got '${a.head.text}'`);
  const sizeTok = a.peek();
  const size = a.bytes('a disk size');
  if (size < 64 * 1024 || size % 512 !== 0) {
    fail(root.l, sizeTok, 'disk size must be a multiple of 512 bytes and at least 64K');
  }
  let table: DiskSpec['table'] = 'none';
  const tt = a.peek();
  if (tt) {
    if (tt.text !== 'mbr' && tt.text !== 'gpt')
      fail(root.l, tt, `expected mbr or gpt, got '${tt.text}'`);
    table = tt.text as 'mbr' | 'gpt';
    a.next('table');
  }
  a.end();
  const disk: DiskSpec = { size, table, partitions: [], pos: pos(root.l, a.head) };

  if (table === 'none') {
    if (root.children.length !== 1 || root.children[0]!.l.tokens[0]!.text !== 'filesystem') {
      const bad =
        root.children.find((c) => c.l.tokens[0]!.text !== 'filesystem') ?? root.children[1];
      fail(
        bad ? bad.l : root.l,
        bad ? bad.l.tokens[0] : undefined,
        'a disk without mbr/gpt holds exactly one "filesystem <type> [options]" line',
      );
    }
    const n = root.children[0]!;
    const fa = new Args(n.l);
    const type = fsType(n.l, fa.next('a filesystem type'));
    const options = fa.options(bindOptions(n.l, type));
    disk.filesystem = filesystemBody(type, options, pos(n.l, fa.head), n.children);
    return disk;
  }

  let extended = 0;
  let primaries = 0;
  for (const c of root.children) {
    const head = c.l.tokens[0]!;
    if (head.text === 'filesystem') {
      fail(c.l, head, `a ${table} disk holds partitions: use 'partition <size|rest> <type>'`);
    }
    if (head.text === 'partition') {
      disk.partitions.push(partition(c, table, false));
      primaries++;
    } else if (head.text === 'extended') {
      if (table !== 'mbr') fail(c.l, head, 'extended partitions exist only in mbr tables');
      if (++extended > 1) fail(c.l, head, 'only one extended partition per disk');
      const ea = new Args(c.l);
      const esize = ea.size('a size or rest', true);
      ea.end();
      const ext: ExtendedSpec = {
        kind: 'extended',
        size: esize,
        partitions: [],
        pos: pos(c.l, head),
      };
      for (const lc of c.children) {
        const lh = lc.l.tokens[0]!;
        if (lh.text !== 'partition')
          fail(lc.l, lh, "an extended partition holds only 'partition' lines");
        ext.partitions.push(partition(lc, 'mbr', true));
      }
      if (ext.partitions.length === 0)
        fail(c.l, head, 'extended partition without logical partitions');
      disk.partitions.push(ext);
      primaries++;
    } else {
      fail(
        c.l,
        head,
        `expected 'partition'${table === 'mbr' ? " or 'extended'" : ''}, got '${head.text}'`,
      );
    }
    if (table === 'mbr' && primaries > 4) {
      fail(c.l, head, 'an MBR holds at most 4 primary partitions (use extended for more)');
    }
    if (table === 'gpt' && primaries > 128) fail(c.l, head, 'a GPT holds at most 128 partitions');
  }
  if (disk.partitions.length === 0)
    fail(root.l, a.head, 'a partitioned disk needs at least one partition');
  return disk;
}
