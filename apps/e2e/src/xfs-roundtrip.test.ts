import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backup, restore } from 'diskube/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Until apps/mkimage has an XFS builder, the images come from @diskube/xfs's own test support
// (mkfs.xfs -p protofile, deletes through xfs_db + xfs_repair); see packages/xfs.
import {
  buildXfs,
  extractFiles,
  haveTool,
  manifest,
  repairCheck,
  xfsDbView,
} from '../../../packages/xfs/src/images.test-support.js';
import { MATRIX } from '../../../packages/xfs/src/matrix.test-support.js';

// Back up and restore XFS images through the library with the default drivers (XFS registered),
// then check the restored image without mounting it: xfs_repair -n is clean and every file left
// after the deletes reads back byte-identical through xfs_db's extent maps.

const CASES = [
  'v5 defaults (4 KiB blocks, finobt, reflink, sparse inodes, bigtime)',
  '1 KiB blocks, fragmented free space (two-level bnobt)',
  'v4 (crc=0)',
  'short last AG (5 × 32 MiB + 20 MiB, in a larger file)',
];

const tools = haveTool('mkfs.xfs') && haveTool('xfs_db', ['-V']) && haveTool('xfs_repair', ['-V']);

describe.runIf(tools)('xfs round trip through diskube backup and restore', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'diskube-xfs-roundtrip-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [i, name] of CASES.entries()) {
    it(name, async () => {
      const recipe = MATRIX[name]!;
      const image = buildXfs(recipe);
      const out = join(dir, `${i}.dkb`);
      const saved = await backup({ image, out });
      expect(saved.fileLength).toBeGreaterThan(0);
      // The bare image is read as XFS and only its used blocks are kept.
      expect(saved.map.parts.map((p) => p.content)).toEqual(['xfs']);
      // Exactly what xfsprogs calls used, plus the AG free lists (kept on purpose).
      const db = xfsDbView(image);
      const blockSize = saved.map.parts[0]!.result!.blockSize;
      expect(saved.usedBytes).toBe(db.used.clone().or(db.agfl).count() * blockSize);
      expect(saved.usedBytes).toBeLessThan(saved.imageBytes / 2);
      const restoredPath = join(dir, `${i}.img`);
      await restore({ backup: out, out: restoredPath });
      const repair = repairCheck(restoredPath);
      expect(repair.status, repair.output).toBe(0);
      const files = manifest(recipe);
      expect(files.length).toBeGreaterThan(5);
      const contents = extractFiles(
        restoredPath,
        files.map((f) => f.path),
      );
      for (const [k, file] of files.entries()) {
        const bytes = contents[k]!;
        expect({
          path: file.path,
          size: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
        }).toEqual(file);
      }
      rmSync(restoredPath, { force: true });
    });
  }
});
