/** Where a node came from in the spec text (1-based). */
export interface Pos {
  line: number;
  column: number;
}

export type TableKind = 'none' | 'mbr' | 'gpt';
/** A filesystem type name the registry knows (`fs/registry.ts`): ext4, ntfs, fat, swap, raw … */
export type FsType = string;

/** Where file bytes come from. Every generator is a pure function of its parameters. */
export type Generator =
  | { kind: 'random'; seed: number }
  | { kind: 'text' }
  | { kind: 'zeros' }
  | { kind: 'literal'; text: string };

export type ContentOp =
  | { op: 'prefill'; gen: Generator; pos: Pos }
  | { op: 'dir'; path: string; pos: Pos }
  | {
      op: 'file';
      path: string;
      size: number;
      gen: Generator;
      /** Written in this many pieces with a 4K spacer file between them, spacers deleted after. */
      fragments?: number;
      pos: Pos;
    }
  | { op: 'files'; dir: string; count: number; size: number | 'small'; seed: number; pos: Pos }
  | { op: 'delete'; path: string; pos: Pos }
  | { op: 'append'; path: string; size: number; gen: Generator; pos: Pos }
  | { op: 'truncate'; path: string; size: number; pos: Pos }
  /** Last line only: leave the filesystem marked as not cleanly unmounted. */
  | { op: 'dirty'; pos: Pos }
  | { op: 'overwrite'; path: string; offset: number; size: number; gen: Generator; pos: Pos };

export interface FilesystemSpec {
  type: FsType;
  /** Options as written (`block=4K` → `{ block: '4K' }`), validated by the parser. */
  options: Record<string, string>;
  content: ContentOp[];
  /** `lv` children of a volume manager (`partition 1G lvm`); absent for filesystems. */
  volumes?: VolumeSpec[];
  pos: Pos;
}

/** `lv NAME SIZE TYPE [segments=N] [stripes=N] [OPTIONS]` under an `lvm` partition. */
export interface VolumeSpec {
  name: string;
  size: number;
  /** Written as this many separate pieces, placed on the PV in reverse order with gaps. */
  segments: number;
  /** One striped segment over this many areas (64 KiB stripes); 1 = linear. */
  stripes: number;
  filesystem: FilesystemSpec;
  pos: Pos;
}

export interface PartitionSpec {
  kind: 'partition';
  size: number | 'rest';
  /** Table attributes: `type=` (MBR hex id or GPT GUID/alias), `name=` (GPT), `bootable` (MBR). */
  attrs: { type?: string; name?: string; bootable?: boolean };
  filesystem: FilesystemSpec;
  pos: Pos;
}

export interface ExtendedSpec {
  kind: 'extended';
  size: number | 'rest';
  /** Logical partitions, numbered 5, 6, … in order. */
  partitions: PartitionSpec[];
  pos: Pos;
}

export interface DiskSpec {
  size: number;
  table: TableKind;
  /** Set when `table` is `none`: the filesystem filling the disk. */
  filesystem?: FilesystemSpec;
  /** Primary (and one extended, MBR only) partitions when there is a table. */
  partitions: Array<PartitionSpec | ExtendedSpec>;
  pos: Pos;
}
