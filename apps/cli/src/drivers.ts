import type { BlockSource, FilesystemDriver, ProbeResult } from '@diskube/core';
import { extDriver } from '@diskube/ext';

/** Every filesystem driver the CLI knows. Adding a filesystem is one line here. */
export const DRIVERS: readonly FilesystemDriver[] = [extDriver];

/** The first driver whose probe recognises the source, or null. */
export async function detectFilesystem(
  source: BlockSource,
): Promise<{ driver: FilesystemDriver; probe: ProbeResult } | null> {
  for (const driver of DRIVERS) {
    const probe = await driver.probe(source);
    if (probe) return { driver, probe };
  }
  return null;
}
