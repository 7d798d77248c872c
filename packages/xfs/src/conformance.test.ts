import { describeDriverConformance } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { requireTools } from '@diskube/mkimage/testing';
import { xfsDriver } from './driver.js';
import { buildXfs, readImage, xfsDbView } from './images.test-support.js';
import { MATRIX } from './matrix.test-support.js';
import { XFS_REASONS, XFS_WARNINGS } from './reasons.js';

const tools = requireTools(['mkfs.xfs', 'xfs_db', 'xfs_repair'], 'xfs conformance tests');

/** A matrix image and xfs_db's view of it: freesp's complement, plus the AGFL diskube keeps. */
function oracleImage(name: string) {
  const path = buildXfs(MATRIX[name]!);
  const db = xfsDbView(path);
  return {
    name,
    image: readImage(path),
    oracle: db.used,
    explained: [{ blocks: db.agfl, why: 'the AGFL: reserved for btree growth, in neither btree' }],
    tailUsed: false,
  };
}

// The shared contract on a v5 and a v4 image of 64 MiB from the feature matrix, compared with
// xfs_db; a log ending in a commit record (the DSL's `dirty`) must be DIRTY.
if (tools) {
  describeDriverConformance(xfsDriver, {
    oracleImages: async () => [
      oracleImage('v5 defaults (4 KiB blocks, finobt, reflink, sparse inodes, bigtime)'),
      oracleImage('v4 (crc=0)'),
    ],
    dirtyImages: async () => [
      {
        name: 'log ending in a commit record',
        image: readImage(
          (
            await buildImage(
              'disk 32M\n  filesystem xfs\n    file /a 10K random seed=1\n    dirty\n',
            )
          ).image,
        ),
        reason: 'log-dirty',
      },
    ],
    reasons: XFS_REASONS,
    warnings: XFS_WARNINGS,
    corruptions: 32,
  });
}
