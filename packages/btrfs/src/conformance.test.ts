import { describeDriverConformance } from '@diskube/core/test';
import { requireTools } from '@diskube/mkimage/testing';
import { btrfsDriver } from './driver.js';
import { buildBtrfs, MATRIX, progsView, readImage, withLogRoot } from './images.test-support.js';
import { BTRFS_REASONS, BTRFS_WARNINGS } from './reasons.js';

const tools = requireTools(['mkfs.btrfs', 'btrfs'], 'btrfs conformance tests');

/** A matrix image (128 MiB, 4 KiB sectors) and btrfs-progs' view of it: exactly equal. */
async function oracleImage(name: string) {
  const path = await buildBtrfs(MATRIX[name]!);
  return {
    name,
    image: readImage(path),
    oracle: progsView(path, 4096, (128 << 20) / 4096),
    tailUsed: false,
  };
}

// The shared contract on the DUP and the SINGLE image of the matrix, compared with btrfs-progs'
// dump of the extent tree; a superblock pointing at a log tree (an fsync not replayed) is DIRTY.
if (tools) {
  describeDriverConformance(btrfsDriver, {
    oracleImages: async () => [
      await oracleImage('mkfs defaults (metadata DUP, skinny metadata, free-space tree)'),
      await oracleImage('metadata=single, data single'),
    ],
    dirtyImages: async () => [
      {
        name: 'log tree awaiting replay',
        image: withLogRoot(readImage(await buildBtrfs(Object.values(MATRIX)[0]!))),
        reason: 'log-tree',
      },
    ],
    reasons: BTRFS_REASONS,
    warnings: BTRFS_WARNINGS,
    corruptions: 8,
  });
}
