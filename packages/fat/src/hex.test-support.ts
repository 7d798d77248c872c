// Test support: boot sectors written field by field, for the inline structure tests.

/** Fields of a FAT boot sector; defaults make a 16 MiB FAT16 with 2 KiB clusters. */
export interface BootFields {
  jmp: number[];
  bytesPerSector: number;
  sectorsPerCluster: number;
  reserved: number;
  fats: number;
  rootEntries: number;
  totalSectors16: number;
  media: number;
  fatSize16: number;
  totalSectors32: number;
  /** FAT32 only (written when fatSize16 is 0). */
  fatSize32: number;
  extFlags: number;
  version: number;
  rootCluster: number;
  fsInfo: number;
  backupBoot: number;
  /** BS_Reserved1, BS_BootSig, BS_VolID, BS_VolLab. */
  flags: number;
  bootSig: number;
  volumeId: number;
  label: string;
  signature: number;
}

export const FAT16_DEFAULTS: BootFields = {
  jmp: [0xeb, 0x3c, 0x90],
  bytesPerSector: 512,
  sectorsPerCluster: 4,
  reserved: 4,
  fats: 2,
  rootEntries: 512,
  totalSectors16: 32768,
  media: 0xf8,
  fatSize16: 32,
  totalSectors32: 0,
  fatSize32: 0,
  extFlags: 0,
  version: 0,
  rootCluster: 0,
  fsInfo: 0,
  backupBoot: 0,
  flags: 0,
  bootSig: 0x29,
  volumeId: 0x12345678,
  label: 'DATA       ',
  signature: 0xaa55,
};

/** A 256 MiB FAT32 with 4 KiB clusters: 65 526+ clusters. */
export const FAT32_DEFAULTS: BootFields = {
  ...FAT16_DEFAULTS,
  jmp: [0xeb, 0x58, 0x90],
  sectorsPerCluster: 8,
  reserved: 32,
  rootEntries: 0,
  totalSectors16: 0,
  fatSize16: 0,
  totalSectors32: 600 * 1024,
  fatSize32: 600,
  rootCluster: 2,
  fsInfo: 1,
  backupBoot: 6,
  label: 'ESP        ',
};

export function bootSector(overrides: Partial<BootFields> = {}, base = FAT16_DEFAULTS): Uint8Array {
  const f = { ...base, ...overrides };
  const b = new Uint8Array(512);
  const v = new DataView(b.buffer);
  b.set(f.jmp, 0);
  b.set(
    [...'mkfs.fat'].map((c) => c.charCodeAt(0)),
    3,
  );
  v.setUint16(0x0b, f.bytesPerSector, true);
  v.setUint8(0x0d, f.sectorsPerCluster);
  v.setUint16(0x0e, f.reserved, true);
  v.setUint8(0x10, f.fats);
  v.setUint16(0x11, f.rootEntries, true);
  v.setUint16(0x13, f.totalSectors16, true);
  v.setUint8(0x15, f.media);
  v.setUint16(0x16, f.fatSize16, true);
  v.setUint32(0x20, f.totalSectors32, true);
  let ext = 0x24;
  if (f.fatSize16 === 0) {
    v.setUint32(0x24, f.fatSize32, true);
    v.setUint16(0x28, f.extFlags, true);
    v.setUint16(0x2a, f.version, true);
    v.setUint32(0x2c, f.rootCluster, true);
    v.setUint16(0x30, f.fsInfo, true);
    v.setUint16(0x32, f.backupBoot, true);
    ext = 0x40;
  }
  v.setUint8(ext + 1, f.flags);
  v.setUint8(ext + 2, f.bootSig);
  v.setUint32(ext + 3, f.volumeId, true);
  b.set(
    [...f.label].map((c) => c.charCodeAt(0)),
    ext + 7,
  );
  v.setUint16(0x1fe, f.signature, true);
  return b;
}
