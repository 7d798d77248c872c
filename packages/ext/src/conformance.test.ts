import { describeDriverConformance } from '@diskube/core/test';
import { requireTools } from '@diskube/mkimage/testing';
import { extDriver } from './driver.js';
import { dumpe2fsUsed } from './images.test-support.js';
import { fs, load, pathOf } from './patch.test-support.js';
import { EXT_REASONS, EXT_WARNINGS } from './reasons.js';

const tools = requireTools(['mke2fs', 'debugfs', 'dumpe2fs'], 'ext conformance tests');

/** ext4, 1 KiB blocks, 2 groups (group 1 BLOCK_UNINIT), metadata_csum, 64-byte descriptors. */
const EXT4 = fs('16M', 'ext4 block=1K');
/** ext4 with uninit_bg (crc16 descriptors), 32-byte descriptors, 4 groups. */
const UNINIT_BG = fs('32M', 'ext4 block=1K features=uninit_bg,^metadata_csum,^64bit');
/** ext2 (no journal, no extents), 4 KiB blocks. */
const EXT2 = fs('8M', 'ext2 block=4K');

/** A DSL image and e2fsprogs' view of it: the complement of dumpe2fs's free ranges. */
async function oracleImage(name: string, spec: string) {
  return {
    name,
    image: await load(spec),
    oracle: dumpe2fsUsed(await pathOf(spec)).used,
    tailUsed: false,
  };
}

if (tools) {
  describeDriverConformance(extDriver, {
    oracleImages: async () => [
      await oracleImage('ext4 1 KiB blocks, metadata_csum', EXT4),
      await oracleImage('ext4 uninit_bg, 32-byte descriptors', UNINIT_BG),
      await oracleImage('ext2 4 KiB blocks', EXT2),
    ],
    dirtyImages: async () => [
      // The DSL's `dirty`: state 0 and, with a journal, needs_recovery.
      { name: 'ext4 needs recovery', image: await load(`${EXT4}    dirty\n`) },
      { name: 'ext2 not clean', image: await load(`${EXT2}    dirty\n`), reason: 'not-clean' },
    ],
    corruptions: 40,
    reasons: EXT_REASONS,
    warnings: EXT_WARNINGS,
  });
}
