import { FieldReader, UnsupportedError } from '@diskube/core';
import { isPowerOfTwo } from './read.js';
import type { ContainerReason } from './reasons.js';

// Sources: VMware "Virtual Disk Format 5.0" (hosted sparse extent header, stream-optimized
// compressed sparse extents), libyal libvmdk "VMware Virtual Disk (VMDK) format", QEMU
// block/vmdk.c (VMDK4Header). All numbers are little-endian; offsets and sizes are in sectors.
//
//   0x00 magicNumber "KDMV"    0x04 version (1..3)   0x08 flags
//   0x0C capacity (u64)        0x14 grainSize (u64)  0x1C descriptorOffset  0x24 descriptorSize
//   0x2C numGTEsPerGT (u32)    0x30 rgdOffset        0x38 gdOffset (all-ones: GD_AT_END)
//   0x40 overHead              0x48 uncleanShutdown  0x4D compressAlgorithm (u16)

export const VMDK_SPARSE_MAGIC = 0x564d444b; // "KDMV"
export const GD_AT_END = 0xffffffffffffffffn;

const FLAG_NEWLINE_TEST = 1 << 0;
const FLAG_REDUNDANT_GT = 1 << 1;
const FLAG_ZERO_GTE = 1 << 2;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const FLAGS_KNOWN =
  FLAG_NEWLINE_TEST | FLAG_REDUNDANT_GT | FLAG_ZERO_GTE | FLAG_COMPRESSED | FLAG_MARKERS;

export interface VmdkSparseHeader {
  version: number;
  /** Virtual size in sectors. */
  capacity: number;
  /** Grain size in sectors. */
  grainSize: number;
  numGTEsPerGT: number;
  /** Grain directory offset in sectors, or undefined when it is at the end (stream-optimized). */
  gdOffset: number | undefined;
  /** Embedded descriptor (monolithicSparse, streamOptimized): start and size in sectors, 0 if none. */
  descriptorOffset: number;
  descriptorSize: number;
  zeroGrains: boolean;
  compressed: boolean;
  markers: boolean;
  uncleanShutdown: boolean;
}

export function parseVmdkSparseHeader(bytes: Uint8Array, base = 0): VmdkSparseHeader {
  const f = new FieldReader<ContainerReason>(bytes, 'VMDK sparse extent header', base);
  if (f.u32le(0x00) !== VMDK_SPARSE_MAGIC) throw f.corrupt('bad VMDK magic', 0, 'bad-magic');
  const version = f.u32le(0x04);
  if (version < 1 || version > 3) {
    throw new UnsupportedError(`VMDK sparse extent version ${version} is not supported`, {
      structure: 'VMDK sparse extent header',
      offset: base + 0x04,
      reason: 'version',
    });
  }
  const flags = f.u32le(0x08);
  if (flags & ~FLAGS_KNOWN) {
    throw new UnsupportedError(`unknown VMDK flags 0x${(flags & ~FLAGS_KNOWN).toString(16)}`, {
      structure: 'VMDK sparse extent header',
      offset: base + 0x08,
      reason: 'incompatible-feature',
    });
  }
  const capacity = f.u64le(0x0c, 'capacity');
  const grainSize = f.u64le(0x14, 'grainSize');
  const numGTEsPerGT = f.u32le(0x2c);
  const descriptorOffset = f.u64le(0x1c, 'descriptorOffset');
  const descriptorSize = f.u64le(0x24, 'descriptorSize');
  const gdOffsetRaw = f.u64leBig(0x38);
  const compressAlgorithm = f.u16le(0x4d);
  // Grains of 512 B to 32 MiB; QEMU and VMware use 64 KiB (128 sectors).
  if (!isPowerOfTwo(grainSize) || grainSize > 65536) {
    throw f.corrupt(`grainSize ${grainSize} is not a power of two <= 65536`, 0x14, 'bad-geometry');
  }
  if (numGTEsPerGT < 1 || numGTEsPerGT > 65536) {
    throw f.corrupt(`numGTEsPerGT ${numGTEsPerGT} outside 1..65536`, 0x2c, 'bad-geometry');
  }
  if (capacity * 512 > Number.MAX_SAFE_INTEGER) {
    throw f.corrupt(`capacity ${capacity} sectors is too large`, 0x0c, 'too-large');
  }
  const compressed = (flags & FLAG_COMPRESSED) !== 0;
  if (compressed && compressAlgorithm !== 1) {
    throw new UnsupportedError(`VMDK compression algorithm ${compressAlgorithm} is not supported`, {
      structure: 'VMDK sparse extent header',
      offset: base + 0x4d,
      reason: 'compression-type',
    });
  }
  let gdOffset: number | undefined;
  if (gdOffsetRaw !== GD_AT_END) {
    if (gdOffsetRaw > BigInt(Math.floor(Number.MAX_SAFE_INTEGER / 512))) {
      throw f.corrupt(`gdOffset ${gdOffsetRaw} is too large`, 0x38, 'too-large');
    }
    gdOffset = Number(gdOffsetRaw);
  }
  return {
    version,
    capacity,
    grainSize,
    numGTEsPerGT,
    gdOffset,
    descriptorOffset,
    descriptorSize,
    zeroGrains: (flags & FLAG_ZERO_GTE) !== 0,
    compressed,
    markers: (flags & FLAG_MARKERS) !== 0,
    uncleanShutdown: f.u8(0x48) !== 0,
  };
}
