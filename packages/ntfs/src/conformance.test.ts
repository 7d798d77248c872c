import { readFileSync } from 'node:fs';
import { describeDriverConformance } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { requireTools } from '@diskube/mkimage/testing';
import { ntfsDriver } from './driver.js';
import {
  buildNtfsImage,
  NTFS_TOOLS,
  type NtfsImageSpec,
  ntfs3gBitmap,
} from './images.test-support.js';
import { NTFS_REASONS, NTFS_WARNINGS } from './reasons.js';

const tools = requireTools([...NTFS_TOOLS, 'gcc'], 'ntfs conformance tests');

/** A volume and ntfs-3g's view of it: the $Bitmap as `ntfscat` reads it. */
function oracleImage(name: string, spec: NtfsImageSpec) {
  const path = buildNtfsImage(spec);
  // mkntfs keeps the last sector for the backup boot sector: clusters = ⌊(size − 512) / cluster⌋.
  const clusters = Math.floor((spec.size - 512) / spec.cluster);
  return {
    name,
    image: new Uint8Array(readFileSync(path)),
    oracle: ntfs3gBitmap(path, clusters),
    tailUsed: true, // the backup boot sector
  };
}

if (tools) {
  describeDriverConformance(ntfsDriver, {
    oracleImages: async () => [
      oracleImage('512-byte clusters, small files', {
        size: 3 << 20,
        cluster: 512,
        label: 'conf',
        steps: [{ op: 'files', prefix: 'f', count: 8, sizes: [10, 3000] }],
      }),
      oracleImage('4 KiB clusters, one large file', {
        size: 4 << 20,
        cluster: 4096,
        steps: [{ op: 'file', name: 'x', size: 100_000 }],
      }),
    ],
    dirtyImages: async () => [
      {
        name: 'VOLUME_IS_DIRTY set in $Volume',
        image: new Uint8Array(
          readFileSync(
            (
              await buildImage(
                'disk 4M\n  filesystem ntfs\n    file /a 10K random seed=1\n    dirty\n',
              )
            ).image,
          ),
        ),
      },
    ],
    reasons: NTFS_REASONS,
    warnings: NTFS_WARNINGS,
  });
}
