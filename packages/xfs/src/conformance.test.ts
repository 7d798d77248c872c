import { describeDriverConformance } from '@diskube/core/test';
import { xfsDriver } from './driver.js';
import { buildXfs, haveTool, readImage } from './images.test-support.js';
import { MATRIX } from './matrix.test-support.js';
import { XFS_REASONS, XFS_WARNINGS } from './reasons.js';

// The shared contract (probe never throws, results cover the source, hostile input ends in a
// typed error in bounded time) on a v5 and a v4 image of 64 MiB.
if (haveTool('mkfs.xfs') && haveTool('xfs_db', ['-V'])) {
  describeDriverConformance(xfsDriver, {
    validImages: async () => [
      readImage(
        buildXfs(MATRIX['v5 defaults (4 KiB blocks, finobt, reflink, sparse inodes, bigtime)']!),
      ),
      readImage(buildXfs(MATRIX['v4 (crc=0)']!)),
    ],
    reasons: XFS_REASONS,
    warnings: XFS_WARNINGS,
    corruptions: 32,
  });
}
