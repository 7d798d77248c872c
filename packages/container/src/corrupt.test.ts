import { readFileSync } from 'node:fs';
import { crc32c, DiskubeError, type ErrorCode, memorySource } from '@diskube/core';
import { describe, expect, it } from 'vitest';
import { containerImage, haveQemuImg, random, type Variant } from './images.test-support.js';
import { CONTAINER_REASONS, type ContainerReason, openContainer } from './index.js';

// Corruption tests: patch bytes of real qemu-img images in memory and assert the error code
// (and reason) that opening and reading the whole disk ends with.

const hasQemu = haveQemuImg();

type Outcome =
  | { ok: true; format: string }
  | { ok: false; code: ErrorCode; reason: string | undefined };

/** Open, read every byte, walk the unallocated ranges; report the outcome. */
async function exercise(bytes: Uint8Array, stride = 1 << 20): Promise<Outcome> {
  try {
    const { format, disk } = await openContainer(memorySource(bytes));
    const chunk = new Uint8Array(1 << 20);
    // With a stride above 1 MiB, read 1 MiB out of every `stride` bytes.
    for (let at = 0; at < disk.size; at += stride) {
      await disk.read(at, chunk.subarray(0, Math.min(chunk.length, disk.size - at)));
    }
    for await (const _ of disk.unallocatedRanges()) {
      // walk only
    }
    return { ok: true, format };
  } catch (error) {
    if (!DiskubeError.isInstance(error)) throw error;
    return { ok: false, code: error.code, reason: error.reason };
  }
}

const cache = new Map<Variant, Uint8Array>();
function image(variant: Variant): Uint8Array {
  let bytes = cache.get(variant);
  if (!bytes) {
    bytes = new Uint8Array(readFileSync(containerImage(variant)));
    cache.set(variant, bytes);
  }
  return bytes.slice();
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

// qcow2 (big-endian) locators.
const q = {
  l1: (b: Uint8Array) => Number(dv(b).getBigUint64(40)),
  l2: (b: Uint8Array, i = 0) => Number(dv(b).getBigUint64(q.l1(b) + i * 8) & 0x00fffffffffffe00n),
  /** L2 entry of cluster 144 (9 MiB, compressible text: compressed in -c images). */
  text: (b: Uint8Array) => q.l2(b) + 144 * 8,
};
// VMDK (little-endian, sectors) locators.
const vm = {
  header: (b: Uint8Array) =>
    dv(b).getBigUint64(0x38, true) === 0xffffffffffffffffn ? b.length - 1024 : 0,
  gd: (b: Uint8Array) => Number(dv(b).getBigUint64(vm.header(b) + 0x38, true)) * 512,
  gt: (b: Uint8Array, i = 0) => dv(b).getUint32(vm.gd(b) + i * 4, true) * 512,
  grain: (b: Uint8Array) => dv(b).getUint32(vm.gt(b), true) * 512,
};
// VHD (big-endian).
function vhdFixChecksum(b: Uint8Array, at: number, length: number, field: number): void {
  let sum = 0;
  for (let i = 0; i < length; i++) if (i < field || i >= field + 4) sum += b[at + i]!;
  dv(b).setUint32(at + field, ~sum >>> 0);
}
const vhd = {
  bat: (b: Uint8Array) => Number(dv(b).getBigUint64(512 + 0x10)),
  patchFooters(b: Uint8Array, patch: (at: number) => void): void {
    for (const at of [0, b.length - 512]) {
      patch(at);
      vhdFixChecksum(b, at, 512, 0x40);
    }
  },
};
// VHDX (little-endian, crc32c).
function vhdxFixCrc(b: Uint8Array, at: number, length: number): void {
  dv(b).setUint32(at + 4, 0, true);
  dv(b).setUint32(at + 4, crc32c(b.subarray(at, at + length)), true);
}
const vx = {
  region(b: Uint8Array, guidFirstByte: number): number {
    const count = dv(b).getUint32(192 * 1024 + 8, true);
    for (let i = 0; i < count; i++) {
      const at = 192 * 1024 + 16 + i * 32;
      if (b[at] === guidFirstByte) return Number(dv(b).getBigUint64(at + 16, true));
    }
    throw new Error('region not found');
  },
  bat: (b: Uint8Array) => vx.region(b, 0x66), // 2DC27766-… stored little-endian: first byte 0x66
  meta: (b: Uint8Array) => vx.region(b, 0x06), // 8B7CA206-…
  /** Offset of a metadata item's data, by the first stored byte of its GUID. */
  item(b: Uint8Array, guidFirstByte: number): number {
    const m = vx.meta(b);
    const count = dv(b).getUint16(m + 10, true);
    for (let i = 0; i < count; i++) {
      const at = m + 32 + i * 32;
      if (b[at] === guidFirstByte) return m + dv(b).getUint32(at + 16, true);
    }
    throw new Error('item not found');
  },
  /** Offset of the current header (highest sequence number). */
  header: (b: Uint8Array) =>
    dv(b).getBigUint64(128 * 1024 + 8, true) > dv(b).getBigUint64(64 * 1024 + 8, true)
      ? 128 * 1024
      : 64 * 1024,
};

interface Case {
  name: string;
  variant: Variant;
  patch: (b: Uint8Array) => void;
  code: ErrorCode | 'raw';
  reason?: ContainerReason;
  /** Use the stream-optimized image rewritten with its grain directory in a footer. */
  atEnd?: boolean;
}

const cases: Case[] = [
  // qcow2
  {
    name: 'bad magic is not qcow2',
    variant: 'qcow2',
    patch: (b) => dv(b).setUint32(0, 0x12345678),
    code: 'raw',
  },
  {
    name: 'version 4',
    variant: 'qcow2',
    patch: (b) => dv(b).setUint32(4, 4),
    code: 'UNSUPPORTED',
    reason: 'version',
  },
  {
    name: 'cluster_bits 40',
    variant: 'qcow2',
    patch: (b) => dv(b).setUint32(20, 40),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'size 2^60',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(24, 1n << 60n),
    code: 'CORRUPT',
    reason: 'too-large',
  },
  {
    name: 'encrypted',
    variant: 'qcow2',
    patch: (b) => dv(b).setUint32(32, 1),
    code: 'UNSUPPORTED',
    reason: 'encrypted',
  },
  {
    name: 'l1_size 2^32-1',
    variant: 'qcow2',
    patch: (b) => dv(b).setUint32(36, 0xffffffff),
    code: 'CORRUPT',
    reason: 'too-large',
  },
  {
    name: 'L1 outside the file',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(40, 1n << 40n),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'unknown incompatible bit',
    variant: 'qcow2',
    patch: (b) => (b[79]! |= 0x80),
    code: 'UNSUPPORTED',
    reason: 'incompatible-feature',
  },
  {
    name: 'marked corrupt',
    variant: 'qcow2',
    patch: (b) => (b[79]! |= 0x02),
    code: 'CORRUPT',
    reason: 'marked-corrupt',
  },
  {
    name: 'external data file',
    variant: 'qcow2',
    patch: (b) => (b[79]! |= 0x04),
    code: 'UNSUPPORTED',
    reason: 'external-data-file',
  },
  {
    name: 'unknown compression type',
    variant: 'qcow2',
    patch: (b) => {
      b[79]! |= 0x08;
      b[104] = 9;
    },
    code: 'UNSUPPORTED',
    reason: 'compression-type',
  },
  {
    name: 'L1 entry outside the file',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(q.l1(b), 1n << 40n),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'two L1 entries sharing an L2 table',
    variant: 'qcow2-v2',
    patch: (b) => dv(b).setBigUint64(q.l1(b) + 8, dv(b).getBigUint64(q.l1(b))),
    code: 'CORRUPT',
    reason: 'overlap',
  },
  {
    name: 'L2 entry outside the file',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(q.l2(b), 0x8000000000000000n | (1n << 44n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    // Issue 11: accepted before as a 0-byte disk (nothing backed up); qemu-img refuses it.
    name: 'size, L1 and refcount table header fields zeroed',
    variant: 'qcow2',
    patch: (b) => {
      for (const [at, n] of [
        [0x18, 8],
        [0x24, 4],
        [0x28, 8],
        [0x30, 8],
        [0x38, 4],
      ] as const)
        b.fill(0, at, at + n);
    },
    code: 'CORRUPT',
    reason: 'missing',
  },
  {
    name: 'refcount table outside the file',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(0x30, 1n << 40n),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    // 4 KiB clusters: one L2 table maps 2 MiB, so an 8 MiB size needs 4 of the 32 L1 entries;
    // the others still map data (at 9, 20, 40 and 63.5 MiB) that reading would drop.
    name: 'size shrunk below what the L1 table maps',
    variant: 'qcow2-v2',
    patch: (b) => dv(b).setBigUint64(0x18, 8n << 20n),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    // Before: the host offset reached the file source as an unsafe integer, and the read failed
    // as INVALID_ARGUMENT (exit 2, "usage"). A cause in the input's bytes is CORRUPT.
    name: 'L2 entry pointing beyond 2^53 bytes',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(q.l2(b), 0x8000000000000000n | (1n << 55n) | (1n << 54n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'compressed L2 entry pointing beyond 2^53 bytes',
    variant: 'qcow2-deflate',
    patch: (b) => dv(b).setBigUint64(q.text(b), (1n << 62n) | ((1n << 54n) - 512n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'L2 entry unaligned',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(q.l2(b), dv(b).getBigUint64(q.l2(b)) + 0x200n),
    code: 'CORRUPT',
    reason: 'unaligned',
  },
  {
    name: 'L2 entry reserved bits',
    variant: 'qcow2',
    patch: (b) => dv(b).setBigUint64(q.l2(b), dv(b).getBigUint64(q.l2(b)) | 0x2n),
    code: 'CORRUPT',
    reason: 'reserved',
  },
  {
    name: 'zero flag in a v2 image',
    variant: 'qcow2-v2',
    patch: (b) => dv(b).setBigUint64(q.l2(b), dv(b).getBigUint64(q.l2(b)) | 0x1n),
    code: 'CORRUPT',
    reason: 'reserved',
  },
  ...(['qcow2-deflate', 'qcow2-zstd'] as const).flatMap((variant): Case[] => [
    {
      name: `${variant}: garbage compressed data`,
      variant,
      patch: (b) => {
        const d = dv(b).getBigUint64(q.text(b));
        const host = Number(d & ((1n << 54n) - 1n));
        b.fill(0xff, host, host + 600);
      },
      code: 'CORRUPT',
      reason: 'bad-compressed-data',
    },
    {
      name: `${variant}: compressed cluster outside the file`,
      variant,
      patch: (b) => dv(b).setBigUint64(q.text(b), 0x4000000000000000n | (1n << 45n)),
      code: 'CORRUPT',
      reason: 'out-of-range',
    },
  ]),
  {
    name: 'qcow2-zstd: frame claiming a 2^41-byte window',
    variant: 'qcow2-zstd',
    patch: (b) => {
      const host = Number(dv(b).getBigUint64(q.text(b)) & ((1n << 54n) - 1n));
      b[host + 4] = 0x00;
      b[host + 5] = 0xff;
    },
    code: 'CORRUPT',
    reason: 'bad-compressed-data',
  },
  // VDI
  {
    name: 'VDI version 2',
    variant: 'vdi',
    patch: (b) => dv(b).setUint16(0x46, 2, true),
    code: 'UNSUPPORTED',
    reason: 'version',
  },
  {
    name: 'VDI differencing without a parent UUID',
    variant: 'vdi',
    patch: (b) => dv(b).setUint32(0x4c, 4, true),
    code: 'CORRUPT',
    reason: 'missing',
  },
  {
    name: 'VDI block size 3',
    variant: 'vdi',
    patch: (b) => dv(b).setUint32(0x178, 3, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VDI block count',
    variant: 'vdi',
    patch: (b) => dv(b).setUint32(0x180, 0xffffffff, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VDI block map outside the file',
    variant: 'vdi',
    patch: (b) => dv(b).setUint32(0x154, 0xfff00000, true),
    code: 'CORRUPT',
  },
  {
    name: 'VDI block entry outside the file',
    variant: 'vdi',
    patch: (b) => dv(b).setUint32(dv(b).getUint32(0x154, true), 100000, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VDI two blocks sharing data',
    variant: 'vdi',
    patch: (b) => {
      const map = dv(b).getUint32(0x154, true);
      dv(b).setUint32(map + 5 * 4, dv(b).getUint32(map, true), true);
    },
    code: 'CORRUPT',
    reason: 'overlap',
  },
  // VMDK
  {
    name: 'VMDK COWD magic',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(0, 0x44574f43, true),
    code: 'UNSUPPORTED',
    reason: 'subformat',
  },
  {
    name: 'VMDK version 7',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(4, 7, true),
    code: 'UNSUPPORTED',
    reason: 'version',
  },
  {
    name: 'VMDK unknown flag',
    variant: 'vmdk-sparse',
    patch: (b) => (b[8]! |= 0x20),
    code: 'UNSUPPORTED',
    reason: 'incompatible-feature',
  },
  {
    name: 'VMDK grain size 3',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setBigUint64(0x14, 3n, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VMDK capacity 2^62',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setBigUint64(0x0c, 1n << 62n, true),
    code: 'CORRUPT',
    reason: 'too-large',
  },
  {
    name: 'VMDK numGTEsPerGT 0',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(0x2c, 0, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VMDK GD outside the file',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setBigUint64(0x38, 1n << 40n, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VMDK GT outside the file',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(vm.gd(b), 0x7fffffff, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VMDK two GD entries sharing a GT',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(vm.gd(b) + 4, dv(b).getUint32(vm.gd(b), true), true),
    code: 'CORRUPT',
    reason: 'overlap',
  },
  {
    name: 'VMDK grain outside the file',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setUint32(vm.gt(b), 0x7fffff00, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VMDK stream: footer GD outside the file',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setBigUint64(b.length - 1024 + 0x38, 1n << 40n, true),
    atEnd: true,
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VMDK stream: footer magic',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setUint32(b.length - 1024, 0, true),
    atEnd: true,
    code: 'CORRUPT',
    reason: 'bad-magic',
  },
  {
    name: 'VMDK stream: marker names another sector',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setBigUint64(vm.grain(b), 12345n, true),
    code: 'CORRUPT',
    reason: 'bad-marker',
  },
  {
    name: 'VMDK stream: huge grain size',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setUint32(vm.grain(b) + 8, 0xfffffff0, true),
    code: 'CORRUPT',
    reason: 'bad-compressed-data',
  },
  {
    name: 'VMDK stream: garbage grain data',
    variant: 'vmdk-stream',
    patch: (b) => b.fill(0xff, vm.grain(b) + 14, vm.grain(b) + 200),
    code: 'CORRUPT',
    reason: 'bad-compressed-data',
  },
  // VHD
  {
    name: 'VHD both footers broken',
    variant: 'vpc-dynamic',
    patch: (b) => {
      b[0x40]! ^= 1;
      b[b.length - 512 + 0x40]! ^= 1;
    },
    code: 'CORRUPT',
    reason: 'checksum',
  },
  {
    name: 'VHD differencing',
    variant: 'vpc-dynamic',
    patch: (b) => vhd.patchFooters(b, (at) => dv(b).setUint32(at + 0x3c, 4)),
    code: 'UNSUPPORTED',
    reason: 'backing-file',
  },
  {
    name: 'VHD unknown disk type',
    variant: 'vpc-dynamic',
    patch: (b) => vhd.patchFooters(b, (at) => dv(b).setUint32(at + 0x3c, 9)),
    code: 'CORRUPT',
    reason: 'disk-type',
  },
  {
    name: 'VHD data offset outside the file',
    variant: 'vpc-dynamic',
    patch: (b) => vhd.patchFooters(b, (at) => dv(b).setBigUint64(at + 0x10, 1n << 50n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHD dynamic header cookie',
    variant: 'vpc-dynamic',
    patch: (b) => (b[512] = 0),
    code: 'CORRUPT',
    reason: 'bad-magic',
  },
  {
    name: 'VHD BAT too small',
    variant: 'vpc-dynamic',
    patch: (b) => {
      dv(b).setUint32(512 + 0x1c, 1);
      vhdFixChecksum(b, 512, 1024, 0x24);
    },
    code: 'CORRUPT',
    reason: 'table-too-small',
  },
  {
    name: 'VHD block size 3',
    variant: 'vpc-dynamic',
    patch: (b) => {
      dv(b).setUint32(512 + 0x20, 3);
      vhdFixChecksum(b, 512, 1024, 0x24);
    },
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VHD BAT entry outside the file',
    variant: 'vpc-dynamic',
    patch: (b) => dv(b).setUint32(vhd.bat(b), 0x7ffffff0),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHD two BAT entries sharing a block',
    variant: 'vpc-dynamic',
    patch: (b) => dv(b).setUint32(vhd.bat(b) + 2 * 4, dv(b).getUint32(vhd.bat(b))),
    code: 'CORRUPT',
    reason: 'overlap',
  },
  {
    name: 'fixed VHD larger than the file',
    variant: 'vpc-fixed',
    patch: (b) => vhd.patchFooters(b, (at) => at > 0 && dv(b).setBigUint64(at + 0x30, 1n << 40n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  // Issue 11 header cross-checks: a size field that lies (zeroed: a 0-byte disk that backs
  // up nothing; shrunk: data past it dropped; grown: tables too small for it).
  {
    name: 'VDI size and block count zeroed',
    variant: 'vdi',
    patch: (b) => {
      dv(b).setBigUint64(0x170, 0n, true);
      dv(b).setUint32(0x180, 0, true);
    },
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VDI static: size and block count halved (data area holds more blocks)',
    variant: 'vdi-static',
    patch: (b) => {
      dv(b).setBigUint64(0x170, dv(b).getBigUint64(0x170, true) / 2n, true);
      dv(b).setUint32(0x180, dv(b).getUint32(0x180, true) / 2, true);
    },
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VDI size doubled, block map as it was',
    variant: 'vdi',
    patch: (b) => dv(b).setBigUint64(0x170, dv(b).getBigUint64(0x170, true) * 2n, true),
    code: 'CORRUPT',
    reason: 'table-too-small',
  },
  {
    name: 'VMDK capacity zeroed',
    variant: 'vmdk-sparse',
    patch: (b) => dv(b).setBigUint64(0x0c, 0n, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VMDK stream: capacity zeroed in the header',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setBigUint64(0x0c, 0n, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VMDK stream: capacity zeroed in the footer',
    variant: 'vmdk-stream',
    patch: (b) => dv(b).setBigUint64(b.length - 1024 + 0x0c, 0n, true),
    atEnd: true,
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    // Without the descriptor's extent line to compare with, a capacity 1024 times too large
    // makes the grain directory (1024 entries) run over the grain tables after it.
    name: 'VMDK capacity ×1024 and no embedded descriptor',
    variant: 'vmdk-sparse',
    patch: (b) => {
      dv(b).setBigUint64(0x0c, dv(b).getBigUint64(0x0c, true) * 1024n, true);
      dv(b).setBigUint64(0x1c, 0n, true);
    },
    code: 'CORRUPT',
    reason: 'overlap',
  },
  {
    name: 'VHD dynamic: current size zeroed in both footers (BAT still maps blocks)',
    variant: 'vpc-dynamic',
    patch: (b) => vhd.patchFooters(b, (at) => dv(b).setBigUint64(at + 0x30, 0n)),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHD dynamic: current size halved',
    variant: 'vpc-dynamic',
    patch: (b) =>
      vhd.patchFooters(b, (at) =>
        dv(b).setBigUint64(at + 0x30, dv(b).getBigUint64(at + 0x30) / 2n),
      ),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHD fixed: current size zeroed',
    variant: 'vpc-fixed',
    patch: (b) => vhd.patchFooters(b, (at) => at > 0 && dv(b).setBigUint64(at + 0x30, 0n)),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VHDX virtual disk size zeroed',
    variant: 'vhdx',
    patch: (b) => dv(b).setBigUint64(vx.item(b, 0x24), 0n, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHDX virtual disk size halved',
    variant: 'vhdx',
    patch: (b) =>
      dv(b).setBigUint64(vx.item(b, 0x24), dv(b).getBigUint64(vx.item(b, 0x24), true) / 2n, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  // VHDX
  {
    name: 'VHDX both headers broken',
    variant: 'vhdx',
    patch: (b) => {
      b[64 * 1024] = 0;
      b[128 * 1024] = 0;
    },
    code: 'CORRUPT',
    reason: 'checksum',
  },
  {
    name: 'VHDX non-empty log',
    variant: 'vhdx',
    patch: (b) => {
      const h = vx.header(b);
      b[h + 0x30] = 1;
      vhdxFixCrc(b, h, 4096);
    },
    code: 'DIRTY',
    reason: 'vhdx-log',
  },
  {
    name: 'VHDX version 2',
    variant: 'vhdx',
    patch: (b) => {
      const h = vx.header(b);
      dv(b).setUint16(h + 0x42, 2, true);
      vhdxFixCrc(b, h, 4096);
    },
    code: 'UNSUPPORTED',
    reason: 'version',
  },
  {
    name: 'VHDX both region tables broken',
    variant: 'vhdx',
    patch: (b) => {
      b[192 * 1024 + 20]! ^= 1;
      b[256 * 1024 + 20]! ^= 1;
    },
    code: 'CORRUPT',
    reason: 'checksum',
  },
  {
    name: 'VHDX region count 5000',
    variant: 'vhdx',
    patch: (b) => {
      dv(b).setUint32(192 * 1024 + 8, 5000, true);
      vhdxFixCrc(b, 192 * 1024, 65536);
    },
    code: 'CORRUPT',
    reason: 'too-large',
  },
  {
    name: 'VHDX BAT entry outside the file',
    variant: 'vhdx',
    patch: (b) => dv(b).setBigUint64(vx.bat(b), (1n << 40n) | 6n, true),
    code: 'CORRUPT',
    reason: 'out-of-range',
  },
  {
    name: 'VHDX BAT entry state 5',
    variant: 'vhdx',
    patch: (b) => dv(b).setBigUint64(vx.bat(b), 5n, true),
    code: 'CORRUPT',
    reason: 'bad-block-state',
  },
  {
    name: 'VHDX two BAT entries sharing a block',
    variant: 'vhdx',
    patch: (b) => dv(b).setBigUint64(vx.bat(b) + 5 * 8, dv(b).getBigUint64(vx.bat(b), true), true),
    code: 'CORRUPT',
    reason: 'overlap',
  },
  {
    name: 'VHDX has a parent',
    variant: 'vhdx',
    patch: (b) => (b[vx.item(b, 0x37) + 4]! |= 2),
    code: 'UNSUPPORTED',
    reason: 'backing-file',
  },
  {
    name: 'VHDX block size 3 MiB',
    variant: 'vhdx',
    patch: (b) => dv(b).setUint32(vx.item(b, 0x37), 3 << 20, true),
    code: 'CORRUPT',
    reason: 'bad-geometry',
  },
  {
    name: 'VHDX metadata signature',
    variant: 'vhdx',
    patch: (b) => (b[vx.meta(b)] = 0),
    code: 'CORRUPT',
    reason: 'bad-magic',
  },
];

describe.runIf(hasQemu)('corrupted real images', () => {
  it.each(VARIANT_CHECK())('%s opens cleanly before patching', async (variant) => {
    expect(await exercise(image(variant))).toMatchObject({ ok: true });
  });

  it.each(cases)('$name', async (c) => {
    const bytes = c.atEnd ? withFooter(image(c.variant)) : image(c.variant);
    c.patch(bytes);
    const outcome = await exercise(bytes);
    if (c.code === 'raw') {
      expect(outcome).toEqual({ ok: true, format: 'raw' });
    } else {
      if (c.reason) expect(CONTAINER_REASONS).toContain(c.reason);
      expect(outcome).toMatchObject({
        ok: false,
        code: c.code,
        ...(c.reason ? { reason: c.reason } : {}),
      });
    }
  });

  it('reads a stream-optimized VMDK whose grain directory is named only by its footer', async () => {
    const bytes = withFooter(image('vmdk-stream'));
    expect(dv(bytes).getBigUint64(0x38, true)).toBe(0xffffffffffffffffn);
    expect(await exercise(bytes)).toEqual({ ok: true, format: 'vmdk' });
    const { disk } = await openContainer(memorySource(bytes));
    const { disk: plain } = await openContainer(memorySource(image('vmdk-stream')));
    const a = new Uint8Array(2 << 20);
    const b = new Uint8Array(2 << 20);
    await disk.read(8 << 20, a);
    await plain.read(8 << 20, b);
    // Compare as one string: deep equality over 2 MiB element by element is slow.
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(a.some((x) => x !== 0)).toBe(true);
  });

  it('falls back to the VHD footer copy at offset 0 when the end one is damaged', async () => {
    const bytes = image('vpc-dynamic');
    bytes[bytes.length - 512 + 0x40]! ^= 1;
    expect(await exercise(bytes)).toEqual({ ok: true, format: 'vhd' });
  });

  it('uses the other VHDX header when the current one is damaged', async () => {
    const bytes = image('vhdx');
    bytes[vx.header(bytes) + 100]! ^= 1;
    expect(await exercise(bytes)).toEqual({ ok: true, format: 'vhdx' });
  });

  // Random byte flips in the metadata of each format: the outcome must be success or a typed
  // error, never a crash or a hang (every loop in the readers is bounded by table sizes).
  it.each([
    'qcow2',
    'qcow2-v2',
    'qcow2-zstd',
    'vdi',
    'vmdk-sparse',
    'vmdk-stream',
    'vpc-dynamic',
    'vhdx',
  ] as Variant[])('%s survives random byte flips in its metadata', async (variant) => {
    const pristine = image(variant);
    const r = random(100 * 8, variant.length * 7919);
    const hot = metadataAreas(variant, pristine);
    for (let i = 0; i < 100; i++) {
      const bytes = pristine.slice();
      for (let k = 0; k < 4; k++) {
        const [start, length] = hot[(r[i * 8 + k]! + k) % hot.length]!;
        const at =
          start + (((r[i * 8 + 4 + (k % 4)]! << 8) | r[(i * 8 + k * 3) % r.length]!) % length);
        bytes[at] = r[(i * 13 + k) % r.length]!;
      }
      const outcome = await exercise(bytes, 5 << 20);
      expect(outcome.ok || typeof outcome.code === 'string').toBe(true);
    }
  });
});

/**
 * qemu-img writes stream-optimized files with the grain directory offset in the header. VMware
 * writes GD_AT_END there and appends footer marker, footer (header copy) and end-of-stream
 * marker; rebuild that layout from qemu's file.
 */
function withFooter(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + 1536);
  out.set(b);
  const marker = dv(out);
  marker.setUint32(b.length + 12, 3, true); // footer marker: val 0, size 0, type 3
  out.set(b.subarray(0, 512), b.length + 512); // footer: the header, with the real gdOffset
  dv(out).setBigUint64(0x38, 0xffffffffffffffffn, true);
  return out;
}

function VARIANT_CHECK(): Variant[] {
  return [...new Set(cases.map((c) => c.variant))];
}

/** [offset, length] areas holding each format's headers and tables. */
function metadataAreas(variant: Variant, b: Uint8Array): Array<[number, number]> {
  switch (variant) {
    case 'qcow2':
    case 'qcow2-v2':
    case 'qcow2-zstd':
      return [
        [0, 112],
        [q.l1(b), 64],
        [q.l2(b), 4096],
      ];
    case 'vdi':
      return [
        [0x40, 0x150],
        [dv(b).getUint32(0x154, true), 256],
      ];
    case 'vmdk-sparse':
    case 'vmdk-stream':
      return [
        [vm.header(b), 80],
        [vm.gd(b), 8],
        [vm.gt(b), 2048],
      ];
    case 'vpc-dynamic':
      return [
        [0, 1536],
        [b.length - 512, 512],
        [vhd.bat(b), 128],
      ];
    default:
      return [
        [64 * 1024, 128],
        [192 * 1024, 128],
        [vx.meta(b), 512],
        [vx.bat(b), 512],
      ];
  }
}
