import { SpecError } from './errors.js';

export interface Token {
  /** The token with quotes removed and escapes resolved. */
  text: string;
  /** True when any part of the token was quoted (so `"rest"` is a string, not a keyword). */
  quoted: boolean;
  /** 1-based column of the token's first character. */
  column: number;
}

export interface SpecLine {
  line: number;
  /** Number of leading spaces. */
  indent: number;
  tokens: Token[];
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\', '0': '\0' };

/**
 * Splits spec text into non-empty lines of whitespace-separated tokens.
 * `#` at the start of a token starts a comment; `"…"` quotes (escapes: \n \t \" \\ \0 \xHH) may appear
 * anywhere in a token, so `label="my disk"` is one token. Indentation is spaces only.
 */
export function tokenize(text: string): SpecLine[] {
  const lines: SpecLine[] = [];
  const raw = text.split(/\r?\n/);
  for (let i = 0; i < raw.length; i++) {
    const src = raw[i]!;
    const lineNo = i + 1;
    let indent = 0;
    while (indent < src.length && (src[indent] === ' ' || src[indent] === '\t')) {
      if (src[indent] === '\t') {
        throw new SpecError('tabs are not allowed in indentation; use spaces', lineNo, indent + 1);
      }
      indent++;
    }
    const tokens: Token[] = [];
    let p = indent;
    while (p < src.length) {
      const c = src[p]!;
      if (c === ' ' || c === '\t') {
        p++;
        continue;
      }
      if (c === '#') break;
      const start = p;
      let value = '';
      let quoted = false;
      while (p < src.length && src[p] !== ' ' && src[p] !== '\t') {
        if (src[p] !== '"') {
          value += src[p];
          p++;
          continue;
        }
        quoted = true;
        const open = p;
        p++;
        let closed = false;
        while (p < src.length) {
          const q = src[p]!;
          if (q === '"') {
            closed = true;
            p++;
            break;
          }
          if (q === '\\') {
            const e = src[p + 1];
            if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(src.slice(p + 2, p + 4))) {
              value += String.fromCharCode(Number.parseInt(src.slice(p + 2, p + 4), 16));
              p += 4;
              continue;
            }
            const mapped = e === undefined ? undefined : ESCAPES[e];
            if (mapped === undefined) {
              throw new SpecError(`unknown escape \\${e ?? ''} in string`, lineNo, p + 1);
            }
            value += mapped;
            p += 2;
            continue;
          }
          value += q;
          p++;
        }
        if (!closed) throw new SpecError('unterminated string', lineNo, open + 1);
      }
      tokens.push({ text: value, quoted, column: start + 1 });
    }
    if (tokens.length > 0) lines.push({ line: lineNo, indent, tokens });
  }
  return lines;
}
