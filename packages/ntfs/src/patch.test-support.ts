/**
 * Test-only helpers (Node): patch the cluster bitmap and MFT records of a real NTFS image in
 * memory, and ask ntfs-3g which files use which clusters. Not exported from the package.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { memorySource } from '@diskube/core';
import { buildImage } from '@diskube/mkimage';
import { AT_DATA, type NonResidentAttribute } from './attribute.js';
import { decodeRunlist, findRun, type Run, SPARSE } from './runlist.js';
import { FILE_BITMAP, NtfsVolume } from './volume.js';

/** A bare NTFS volume built from a DSL `spec`: its cached path and a private copy of its bytes. */
export async function dslVolume(spec: string): Promise<{ path: string; image: Uint8Array }> {
  const { image, manifest } = await buildImage(spec);
  const part = manifest.partitions[0]!;
  if (part.offset !== 0 || part.fs !== 'ntfs') throw new Error('spec must be a bare NTFS volume');
  return { path: image, image: new Uint8Array(readFileSync(image)) };
}

/** Byte offset in the image of byte `pos` of a stream with `runs`. */
function byteAt(runs: Run[], clusterSize: number, pos: number): number {
  const run = findRun(runs, Math.floor(pos / clusterSize));
  if (!run || run.lcn === SPARSE) throw new Error(`byte ${pos} of the stream is not mapped`);
  return run.lcn * clusterSize + (pos - run.vcn * clusterSize);
}

/** Clear the $Bitmap bits of clusters `lcn … lcn + count − 1`, in place, through $Bitmap's runs. */
export async function clearBitmapBits(image: Uint8Array, lcn: number, count: number) {
  const vol = await NtfsVolume.open(memorySource(image));
  const data = vol.stream(await vol.openFile(FILE_BITMAP), AT_DATA);
  if (!data || data.resident) throw new Error('$Bitmap is not a non-resident stream');
  for (let c = lcn; c < lcn + count; c++) {
    const at = byteAt(data.runs, vol.boot.clusterSize, c >> 3);
    image[at] = image[at]! & ~(1 << (c & 7));
  }
}

/** Zero every byte of $Bitmap's data, in place. */
export async function zeroBitmap(image: Uint8Array) {
  const vol = await NtfsVolume.open(memorySource(image));
  const data = vol.stream(await vol.openFile(FILE_BITMAP), AT_DATA);
  if (!data || data.resident) throw new Error('$Bitmap is not a non-resident stream');
  for (let pos = 0; pos < data.dataSize; pos++)
    image[byteAt(data.runs, vol.boot.clusterSize, pos)] = 0;
}

/** Byte offset in the image of MFT record `n`. */
export async function recordOffset(image: Uint8Array, n: number): Promise<number> {
  const vol = await NtfsVolume.open(memorySource(image));
  return byteAt(vol.mftRuns, vol.boot.clusterSize, n * vol.boot.mftRecordSize);
}

/** The runs (sparse ones left out) of every non-resident attribute extent held in record `n`. */
export async function recordRuns(
  image: Uint8Array,
  n: number,
): Promise<Array<{ type: number; name: string; runs: Run[] }>> {
  const vol = await NtfsVolume.open(memorySource(image));
  const { attributes } = await vol.readRecord(n);
  return attributes
    .filter((a): a is NonResidentAttribute => !a.resident)
    .map((a) => ({
      type: a.type,
      name: a.name,
      runs: decodeRunlist(
        a.mappingPairs,
        a.lowestVcn,
        a.highestVcn,
        vol.boot.clusterCount,
        'test',
        a.mappingPairsOffset,
      ).filter((r) => r.lcn !== SPARSE),
    }));
}

/** The MFT record of `name` in directory `dir`, from `ntfsls -i`. */
export function recordOf(path: string, dir: string, name: string): number {
  const out = execFileSync('ntfsls', ['-f', '-i', '-p', dir, path], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && m[2] === name) return Number(m[1]);
  }
  throw new Error(`${dir}/${name} not found by ntfsls`);
}

/** ntfs-3g's owner of cluster `lcn`: `ntfscluster -c` as `Inode N /path/$ATTR`, or ''. */
export function ntfsclusterOwner(path: string, lcn: number): string {
  const out = execFileSync('ntfscluster', ['-f', '-c', String(lcn), path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return /^Inode \d+ .*$/m.exec(out)?.[0] ?? '';
}

/** Clusters ntfs-3g finds referenced by all inodes: `ntfscluster --info` user data + metadata. */
export function ntfsclusterReferenced(path: string): number {
  const out = execFileSync('ntfscluster', ['-f', '--info', path], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const n = (label: string) =>
    Number(new RegExp(`clusters of ${label}\\s*:\\s*(\\d+)`).exec(out)?.[1]);
  return n('user data') + n('metadata');
}
