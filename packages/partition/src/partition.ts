/** One partition of a disk, in bytes from the start of the disk. */
export interface Partition {
  /** 1-based number as Linux names it: MBR primaries 1–4, logical partitions from 5; GPT entries from 1. */
  number: number;
  /** Byte offset of the first byte. */
  offset: number;
  /** Length in bytes. */
  size: number;
  /** MBR type byte as two hex digits (`83`), or the GPT type GUID in upper case. */
  type: string;
  /** Human name of the type when known (`Linux filesystem`, `EFI system`, `Linux swap`). */
  typeName: string;
  /** GPT partition name, MBR `logical` / `primary`. */
  name: string;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt';
  sectorSize: number;
  partitions: Partition[];
  /** Byte ranges that hold the table itself (MBR, EBRs, GPT headers and entry arrays). */
  metadata: Array<[offset: number, length: number]>;
  warnings: Array<{ code: string; message: string; offset?: number }>;
}
