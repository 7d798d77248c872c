// Sources: ISO 3309 / ITU-T V.42 CRC-32 (reflected polynomial 0xEDB88320), as UEFI §4.2 uses it
// for GPT; check value crc32("123456789") = 0xCBF43926. LVM2 (lib/misc/crc.c) feeds the same
// register from its own start value without the final inversion, hence `crc32Update`.

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The raw CRC-32 register after feeding `bytes` into `register`, with no inversion. */
export function crc32Update(register: number, bytes: Uint8Array): number {
  let crc = register >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}

/** CRC-32 (IEEE, zlib's) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  return (crc32Update(0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}
