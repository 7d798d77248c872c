import { CorruptError } from '@diskube/core';
import type { LvmReason } from './reasons.js';

// Sources: LVM2 lib/config/config.c and libdm/libdm-config.c (the config-tree grammar the text
// metadata is written in: `key = value`, `name { … }`, values are integers, floats, quoted
// strings with backslash escapes, or `[ … ]` arrays of those; `#` starts a comment) and
// lib/format_text/export.c (what LVM writes into it).

export type ConfigValue = number | string | ConfigValue[];
/** A `name { … }` section: keys in order, each a value or a nested section. */
export interface ConfigSection {
  values: Map<string, ConfigValue>;
  sections: Map<string, ConfigSection>;
  /** Byte offset of the section's name in the text, for errors. */
  at: number;
}

/** Nesting deeper than LVM ever writes (VG → logical_volumes → LV → segment is 4). */
const MAX_DEPTH = 16;
/** Elements of one array (stripes lists hold 2 per stripe; LVM allows 128 stripes). */
const MAX_ARRAY = 65_536;

const IDENT = /[A-Za-z0-9_.+\-@]/;

/**
 * Parses metadata text into a tree. `baseOffset` is where the text lies in the source, so
 * errors carry an absolute byte offset (approximate for multi-byte characters).
 */
export function parseConfig(text: string, baseOffset = 0): ConfigSection {
  let i = 0;
  const fail = (message: string, reason: LvmReason = 'bad-syntax'): never => {
    throw new CorruptError(`metadata text: ${message}`, {
      structure: 'LVM2 metadata text',
      offset: baseOffset + i,
      reason,
    });
  };
  const skip = () => {
    while (i < text.length) {
      const c = text[i]!;
      if (c === '#') {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else break;
    }
  };
  const ident = (): string => {
    const start = i;
    while (i < text.length && IDENT.test(text[i]!)) i++;
    if (i === start) fail(`expected a name, got '${text[i] ?? 'end of text'}'`);
    return text.slice(start, i);
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i++]!;
      if (c === '"') return out;
      if (c === '\\') {
        if (i >= text.length) fail('unterminated string');
        out += text[i++]!;
      } else out += c;
    }
  };
  const number = (): number => {
    const start = i;
    if (text[i] === '-') i++;
    while (i < text.length && /[0-9.]/.test(text[i]!)) i++;
    const raw = text.slice(start, i);
    const value = Number(raw);
    if (raw === '' || raw === '-' || !Number.isFinite(value)) fail(`bad number '${raw}'`);
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      i = start;
      fail(`number ${raw} is too large`, 'too-large');
    }
    return value;
  };
  const scalar = (): number | string => {
    const c = text[i];
    if (c === '"') return string();
    if (c !== undefined && /[-0-9]/.test(c)) return number();
    return fail(`expected a value, got '${c ?? 'end of text'}'`);
  };
  const value = (): ConfigValue => {
    if (text[i] !== '[') return scalar();
    i++;
    const list: ConfigValue[] = [];
    skip();
    if (text[i] === ']') {
      i++;
      return list;
    }
    for (;;) {
      skip();
      list.push(scalar());
      if (list.length > MAX_ARRAY) fail(`array longer than ${MAX_ARRAY}`, 'too-large');
      skip();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return list;
      }
      fail(`expected ',' or ']', got '${text[i] ?? 'end of text'}'`);
    }
  };
  const body = (section: ConfigSection, depth: number, closing: boolean) => {
    for (;;) {
      skip();
      if (i >= text.length) {
        if (closing) fail("missing '}'");
        return;
      }
      if (text[i] === '}') {
        if (!closing) fail("unexpected '}'");
        i++;
        return;
      }
      const at = i;
      const key = ident();
      skip();
      if (text[i] === '{') {
        i++;
        if (depth + 1 > MAX_DEPTH) fail(`sections nested deeper than ${MAX_DEPTH}`, 'too-large');
        if (section.sections.has(key)) fail(`section '${key}' appears twice`, 'bad-value');
        const child: ConfigSection = {
          values: new Map(),
          sections: new Map(),
          at: baseOffset + at,
        };
        section.sections.set(key, child);
        body(child, depth + 1, true);
      } else if (text[i] === '=') {
        i++;
        skip();
        section.values.set(key, value());
      } else fail(`expected '=' or '{' after '${key}'`);
    }
  };
  const root: ConfigSection = { values: new Map(), sections: new Map(), at: baseOffset };
  body(root, 0, false);
  return root;
}
