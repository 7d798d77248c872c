const UNITS: Record<string, number> = {
  '': 1,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
};

/**
 * Parses `4096`, `1K`, `64M`, `1.5G`, `1T` (binary units, optional `B`/`iB`) to bytes.
 * Returns null when the text is not a size or the value is not a whole number of bytes.
 */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(?:i?B)?$/i.exec(text);
  if (!m) return null;
  const unit = UNITS[m[2]!.toUpperCase()]!;
  const value = Number(m[1]) * unit;
  if (!Number.isSafeInteger(value)) return null;
  return value;
}

/** Formats bytes with the largest binary unit that divides them exactly. */
export function formatSize(bytes: number): string {
  for (const u of ['T', 'G', 'M', 'K'] as const) {
    const unit = UNITS[u]!;
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${u}`;
  }
  return String(bytes);
}
