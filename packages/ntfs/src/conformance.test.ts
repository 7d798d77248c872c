import { readFileSync } from 'node:fs';
import { describeDriverConformance } from '@diskube/core/test';
import { describe, expect, it } from 'vitest';
import { ntfsDriver } from './driver.js';
import { NTFS_REASONS, NTFS_WARNINGS } from './reasons.js';
import { buildNtfsImage, ntfsToolsAvailable } from './test-images.js';

if (ntfsToolsAvailable()) {
  describeDriverConformance(ntfsDriver, {
    validImages: async () =>
      [
        buildNtfsImage({
          size: 3 << 20,
          cluster: 512,
          label: 'conf',
          steps: [{ op: 'files', prefix: 'f', count: 8, sizes: [10, 3000] }],
        }),
        buildNtfsImage({
          size: 4 << 20,
          cluster: 4096,
          steps: [{ op: 'file', name: 'x', size: 100_000 }],
        }),
      ].map((path) => new Uint8Array(readFileSync(path))),
    reasons: NTFS_REASONS,
    warnings: NTFS_WARNINGS,
  });
} else {
  describe('ntfs driver conformance', () => {
    it('cannot run without the ntfs-3g tools (allowed outside CI only)', () => {
      expect(process.env.CI).not.toBe('true');
    });
  });
}
