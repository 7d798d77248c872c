// Test support (not exported by the package): real XFS images built by xfsprogs without mounting,
// and the xfsprogs view of their used blocks to compare against (partclone's comes from
// `partcloneDomain` in @diskube/mkimage/testing; tool checks from its `requireTools`).
//
// Images are built with `mkfs.xfs -p protofile` (files copied in at mkfs time). Deletes without a
// mount: `xfs_db -x` zeroes the mode of the inodes to delete and `xfs_repair` then clears them and
// returns their blocks to the free-space btrees, leaving their old data on disk and the free space
// fragmented (which makes the bnobt grow levels). Images are sparse files cached under the OS temp
// directory, keyed by a hash of the recipe. Treat them as read-only.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bitmap } from '@diskube/bitmap';
import { randomBytes } from '@diskube/core/test';

const CACHE = join(tmpdir(), 'diskube-xfs-test-images');

/** mkfs.xfs refuses filesystems under 300 MB unless it believes it runs under fstests. */
const MKFS_ENV = { ...process.env, TEST_DIR: tmpdir(), TEST_DEV: '/dev/null', QA_CHECK_FS: '1' };

export interface XfsRecipe {
  /** Image file size in bytes. */
  size: number;
  /** mkfs.xfs options (e.g. ['-b', 'size=1024']). */
  mkfs: string[];
  /** Files of /d, sizes in bytes; /d/f1 and /d/f4 are deleted afterwards. */
  files?: number[];
  /** Small files (3000 bytes) in /m; the odd-numbered ones are deleted afterwards. */
  small?: number;
  /** Fill the file with random bytes before mkfs (so free space is not zeroes). */
  prefill?: boolean;
  seed?: number;
  /** Change the uuid afterwards with `xfs_admin -U`: v5 then sets meta_uuid and keeps the old one there. */
  newUuid?: string;
}

function fileContent(recipe: XfsRecipe, dir: 'd' | 'm', i: number): Uint8Array {
  const size = dir === 'd' ? recipe.files![i]! : 3000;
  return randomBytes(size, (recipe.seed ?? 1) * 100_000 + (dir === 'd' ? 0 : 50_000) + i);
}

function xfsDb(path: string, commands: string[], expert = false, extra: string[] = []): string {
  return execFileSync(
    'xfs_db',
    [...(expert ? ['-x'] : ['-r']), ...extra, ...commands.flatMap((c) => ['-c', c]), path],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 28,
    },
  );
}

/** Inode numbers of the entries of directory `dir`, by name. */
function listDir(path: string, dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of xfsDb(path, [`ls ${dir}`]).split('\n')) {
    const m = /^\d+\s+(\d+)\s+\S+\s+\S+\s+\d+\s+(\S+)/.exec(line.trim());
    if (m && m[2] !== '.' && m[2] !== '..') out.set(m[2]!, Number(m[1]));
  }
  return out;
}

/** Build (or reuse) the image for `recipe`; returns its path. */
export function buildXfs(recipe: XfsRecipe): string {
  const key = createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 16);
  const path = join(CACHE, `${key}.img`);
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, `${key}.${process.pid}.tmp`);
  mkdirSync(work, { recursive: true });
  try {
    const img = join(work, 'image');
    execFileSync('truncate', ['-s', String(recipe.size), img]);
    if (recipe.prefill) {
      const fd = openSync(img, 'r+');
      const chunk = randomBytes(1 << 20, recipe.seed ?? 1);
      for (let at = 0; at < recipe.size; at += chunk.length) {
        writeSync(fd, chunk, 0, Math.min(chunk.length, recipe.size - at), at);
      }
      closeSync(fd);
    }
    const proto = ['/dev/null', '0 0', 'd--755 0 0'];
    const files = recipe.files ?? [];
    if (files.length > 0) {
      proto.push('d d--755 0 0');
      files.forEach((_, i) => {
        const host = join(work, `d${i}`);
        writeFileSync(host, fileContent(recipe, 'd', i));
        proto.push(`f${i} ---644 0 0 ${host}`);
      });
      proto.push('$');
    }
    if ((recipe.small ?? 0) > 0) {
      proto.push('m d--755 0 0');
      for (let i = 0; i < recipe.small!; i++) {
        const host = join(work, `m${i}`);
        writeFileSync(host, fileContent(recipe, 'm', i));
        proto.push(`s${i} ---644 0 0 ${host}`);
      }
      proto.push('$');
    }
    proto.push('$');
    writeFileSync(join(work, 'proto'), `${proto.join('\n')}\n`);
    // -K: no discard, which on a regular file would punch out the prefill.
    execFileSync('mkfs.xfs', ['-q', '-f', '-K', ...recipe.mkfs, '-p', join(work, 'proto'), img], {
      env: MKFS_ENV,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const doomed: number[] = [];
    if (files.length > 4) {
      const d = listDir(img, '/d');
      doomed.push(d.get('f1')!, d.get('f4')!);
    }
    if ((recipe.small ?? 0) > 1) {
      for (const [name, ino] of listDir(img, '/m'))
        if (Number(name.slice(1)) % 2 === 1) doomed.push(ino);
    }
    if (doomed.length > 0) {
      xfsDb(
        img,
        doomed.flatMap((ino) => [`inode ${ino}`, 'write core.mode 0']),
        true,
      );
      execFileSync('xfs_repair', [img], { stdio: 'ignore' });
    }
    if (recipe.newUuid) execFileSync('xfs_admin', ['-U', recipe.newUuid, img], { stdio: 'ignore' });
    renameSync(img, path);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return path;
}

/** Superblock geometry as xfs_db prints it. */
export function geometry(
  path: string,
  extra: string[] = [],
): {
  blockSize: number;
  dblocks: number;
  agblocks: number;
  agcount: number;
} {
  const text = xfsDb(path, ['sb 0', 'p blocksize dblocks agblocks agcount'], false, extra);
  const get = (name: string) => Number(new RegExp(`^${name} = (\\d+)`, 'm').exec(text)![1]);
  return {
    blockSize: get('blocksize'),
    dblocks: get('dblocks'),
    agblocks: get('agblocks'),
    agcount: get('agcount'),
  };
}

/**
 * xfsprogs' view: `xfs_db freesp -d` lists every free extent per AG — the bnobt's and, as
 * single blocks, the AG free list's. Returns the used blocks (the complement, linear numbering)
 * and the AGFL blocks separately (from `agf N` / `agfl N`), which diskube keeps on purpose.
 */
export function xfsDbView(
  path: string,
  extra: string[] = [],
): { used: Bitmap; agfl: Bitmap; freeblks: number } {
  const geo = geometry(path, extra);
  const used = new Bitmap(geo.dblocks).setAll();
  for (const m of xfsDb(path, ['freesp -d'], false, extra).matchAll(
    /^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/gm,
  )) {
    used.clearRange(Number(m[1]) * geo.agblocks + Number(m[2]), Number(m[3]));
  }
  const agfl = new Bitmap(geo.dblocks);
  let freeblks = 0;
  for (let ag = 0; ag < geo.agcount; ag++) {
    const text = xfsDb(
      path,
      [`agf ${ag}`, 'p flfirst fllast flcount freeblks', `agfl ${ag}`, 'p bno'],
      false,
      extra,
    );
    const get = (name: string) => Number(new RegExp(`^${name} = (\\d+)`, 'm').exec(text)![1]);
    freeblks += get('freeblks');
    const slots = new Map<number, number>();
    for (const m of text.matchAll(/(\d+):(\d+)/g)) slots.set(Number(m[1]), Number(m[2]));
    const size = Math.max(...slots.keys(), 0) + 1;
    for (let k = 0, i = get('flfirst'); k < get('flcount'); k++, i = (i + 1) % size) {
      agfl.set(ag * geo.agblocks + slots.get(i)!);
    }
  }
  return { used, agfl, freeblks };
}

/** `xfs_repair -n` exit status and output: 0 when clean. */
export function repairCheck(path: string): { status: number; output: string } {
  const r = spawnSync('xfs_repair', ['-n', path], { encoding: 'utf8' });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** A copy of the image file in memory, for patching. */
export function readImage(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
