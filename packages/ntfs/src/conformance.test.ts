import { readFileSync } from 'node:fs';
import { describeDriverConformance } from '@diskube/core/test';
import { buildImage } from '@diskube/mkimage';
import { requireTools } from '@diskube/mkimage/testing';
import { ntfsDriver } from './driver.js';
import { NTFS_TOOLS, ntfs3gBitmap } from './images.test-support.js';
import { NTFS_REASONS, NTFS_WARNINGS } from './reasons.js';

const tools = requireTools([...NTFS_TOOLS, 'gcc'], 'ntfs conformance tests');

const bytesOf = async (spec: string) =>
  new Uint8Array(readFileSync((await buildImage(spec)).image));

/** A DSL volume of `size` bytes and ntfs-3g's view of it: the $Bitmap as `ntfscat` reads it. */
async function oracleImage(name: string, size: number, cluster: number, spec: string) {
  const path = (await buildImage(spec)).image;
  // mkntfs keeps the last sector for the backup boot sector: clusters = ⌊(size − 512) / cluster⌋.
  return {
    name,
    image: new Uint8Array(readFileSync(path)),
    oracle: ntfs3gBitmap(path, Math.floor((size - 512) / cluster)),
    tailUsed: true, // the backup boot sector
  };
}

if (tools) {
  describeDriverConformance(ntfsDriver, {
    oracleImages: async () => [
      await oracleImage(
        '512-byte clusters, small files, one deleted',
        3 << 20,
        512,
        'disk 3M\n  filesystem ntfs cluster=512 label=conf\n    prefill random seed=1\n    files /f 8 small\n    file /gone 40K random seed=2\n    delete /gone\n',
      ),
      await oracleImage(
        '4 KiB clusters, one large file',
        4 << 20,
        4096,
        'disk 4M\n  filesystem ntfs cluster=4K\n    prefill random seed=3\n    file /x 100000 random seed=7\n',
      ),
    ],
    dirtyImages: async () => [
      {
        name: 'VOLUME_IS_DIRTY set in $Volume',
        image: await bytesOf(
          'disk 4M\n  filesystem ntfs\n    file /a 10K random seed=1\n    dirty\n',
        ),
      },
    ],
    reasons: NTFS_REASONS,
    warnings: NTFS_WARNINGS,
  });
}
