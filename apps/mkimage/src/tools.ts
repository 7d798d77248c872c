import { BUILDERS } from './fs/registry.js';

export { FIXED_TIME, hasTool, type RunOptions, type RunResult, run } from './run.js';

/** Debian package that ships each tool we run: the table tools, then each builder's own. */
export const TOOL_PACKAGES: Record<string, string> = Object.assign(
  { sfdisk: 'fdisk', sgdisk: 'gdisk' },
  ...BUILDERS.map((b) => b.tools),
);
