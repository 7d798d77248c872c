import { BUILDERS } from './fs/registry.js';

export { FIXED_TIME, hasTool, type RunOptions, type RunResult, run } from './run.js';

/** Debian package that ships each tool we run: the table tools, then each builder's own. */
export const TOOL_PACKAGES: Record<string, string> = Object.assign(
  { sfdisk: 'fdisk', sgdisk: 'gdisk' },
  ...BUILDERS.map((b) => b.tools),
);

/** The Debian package to install for `tool` (every partclone.<fs> comes with `partclone`). */
export function debianPackage(tool: string): string {
  return TOOL_PACKAGES[tool] ?? (tool.startsWith('partclone.') ? 'partclone' : tool);
}
