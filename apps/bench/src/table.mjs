/** A Markdown table; cells are strings (pipes escaped), columns padded to line up. */
export function markdownTable(/** @type {string[]} */ head, /** @type {string[][]} */ rows) {
  const all = [head, ...rows].map((r) => r.map((c) => c.replaceAll('|', '\\|')));
  const widths = head.map((_, i) => Math.max(3, ...all.map((r) => (r[i] ?? '').length)));
  const line = (/** @type {string[]} */ r) =>
    `| ${widths.map((w, i) => (r[i] ?? '').padEnd(w)).join(' | ')} |`;
  const [first, ...rest] = all;
  return [
    line(/** @type {string[]} */ (first)),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rest.map(line),
  ].join('\n');
}

/** Bytes in MiB with two decimals (the unit the tables use), or KiB below 1 MiB. */
export function mib(/** @type {number} */ bytes) {
  if (Math.abs(bytes) < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

/** Seconds with two decimals. */
export function secs(/** @type {number} */ s) {
  return `${s.toFixed(2)} s`;
}

/** Signed percentage of `a` relative to `b` ("+0.80 %"). */
export function relative(/** @type {number} */ a, /** @type {number} */ b) {
  const p = ((a - b) / b) * 100;
  return `${p >= 0 ? '+' : ''}${p.toFixed(2)} %`;
}

/** "yes" / "**NO**" for a target. */
export function met(/** @type {boolean} */ ok) {
  return ok ? 'yes' : '**NO**';
}
