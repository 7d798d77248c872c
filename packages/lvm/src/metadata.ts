import { CorruptError } from '@diskube/core';
import type { LvmReason } from './reasons.js';
import { type ConfigSection, type ConfigValue, parseConfig } from './text.js';

// Sources: LVM2 lib/format_text/import_vsn1.c (_read_vg, _read_pv, _read_lv, _read_segment:
// which keys are required, extent_size and pe_start in 512-byte sectors, segments numbered
// segment1…segmentN and covering the LV from extent 0 without gaps) and
// lib/striped/striped.c (_striped_text_import: stripe_count, stripe_size in sectors, the
// `stripes` array of PV name and starting extent pairs; each stripe holds extent_count /
// stripe_count extents). "linear" segments are written as "striped" with one stripe.

const SECTOR = 512;
/** LVM's own limits: 128 stripes per segment (MAX_STRIPES); far more LVs than LVM allows. */
const MAX_STRIPES = 128;
const MAX_LVS = 65_536;
const MAX_SEGMENTS = 1_000_000;

export interface PvEntry {
  /** The name the metadata uses for it (`pv0`). */
  name: string;
  /** The PV uuid (6-4-4-4-4-4-6), which the label also carries. */
  id: string;
  /** `device` hint, when present. */
  device: string | null;
  /** Byte offset of the first extent in the PV. */
  peStart: number;
  peCount: number;
}

export interface Stripe {
  /** Name of the PV (as in `physical_volumes`) the stripe is on. */
  pv: string;
  /** First physical extent of the stripe on that PV. */
  extent: number;
}

export interface Segment {
  /** First logical extent of the LV this segment covers. */
  startExtent: number;
  extentCount: number;
  /** `striped` (linear is one stripe), or any other type LVM writes: `thin-pool`, `raid1` … */
  type: string;
  /** Bytes per stripe chunk (`striped` with two or more stripes); 0 otherwise. */
  stripeSize: number;
  /** The areas of a `striped` segment, in order; empty for other types. */
  stripes: Stripe[];
  /** Every string a segment of another type names (sub-LVs, pools, origins), for keep-whole rules. */
  references: string[];
}

export interface LvEntry {
  name: string;
  id: string;
  status: string[];
  segments: Segment[];
  /** Extents of the LV (sum of its segments'). */
  extentCount: number;
}

export interface VolumeGroup {
  name: string;
  id: string;
  seqno: number;
  /** Bytes per extent. */
  extentSize: number;
  physicalVolumes: PvEntry[];
  logicalVolumes: LvEntry[];
}

class Fields {
  constructor(
    readonly section: ConfigSection,
    readonly what: string,
  ) {}

  fail(message: string, reason: LvmReason): never {
    throw new CorruptError(`${this.what}: ${message}`, {
      structure: 'LVM2 metadata text',
      offset: this.section.at,
      reason,
    });
  }

  raw(key: string): ConfigValue {
    const value = this.section.values.get(key);
    if (value === undefined) this.fail(`missing '${key}'`, 'missing-field');
    return value!;
  }

  int(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw(key);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(
        `'${key}' = ${JSON.stringify(value)} is not an integer from ${min} to ${max}`,
        'bad-value',
      );
    }
    return value as number;
  }

  str(key: string): string {
    const value = this.raw(key);
    if (typeof value !== 'string') this.fail(`'${key}' is not a string`, 'bad-value');
    return value as string;
  }

  optionalStr(key: string): string | null {
    return this.section.values.has(key) ? this.str(key) : null;
  }

  strings(key: string): string[] {
    const value = this.section.values.get(key) ?? [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      this.fail(`'${key}' is not a list of strings`, 'bad-value');
    }
    return value as string[];
  }

  sectionOf(key: string): ConfigSection {
    const section = this.section.sections.get(key);
    if (!section) this.fail(`missing section '${key}'`, 'missing-field');
    return section!;
  }
}

/** Every string value in a section and its subsections (a segment's references). */
function stringsIn(section: ConfigSection, out: string[]): string[] {
  const visit = (value: ConfigValue) => {
    if (typeof value === 'string') out.push(value);
    else if (Array.isArray(value)) for (const v of value) visit(v);
  };
  for (const value of section.values.values()) visit(value);
  for (const child of section.sections.values()) stringsIn(child, out);
  return out;
}

function readSegment(section: ConfigSection, what: string, extentSize: number): Segment {
  const f = new Fields(section, what);
  const startExtent = f.int('start_extent');
  const extentCount = f.int('extent_count', 1);
  const type = f.str('type');
  if (type !== 'striped') {
    return {
      startExtent,
      extentCount,
      type,
      stripeSize: 0,
      stripes: [],
      references: stringsIn(section, []),
    };
  }
  const stripeCount = f.int('stripe_count', 1, MAX_STRIPES);
  const stripeSize = stripeCount > 1 ? f.int('stripe_size', 1, 2 ** 32) * SECTOR : 0;
  if (extentCount % stripeCount !== 0) {
    f.fail(`${extentCount} extents do not divide into ${stripeCount} stripes`, 'bad-segment');
  }
  // A stripe chunk must divide the extent, or an extent would straddle two stripes.
  if (stripeSize > 0 && extentSize % stripeSize !== 0) {
    f.fail(
      `stripe size ${stripeSize} does not divide the extent size ${extentSize}`,
      'bad-segment',
    );
  }
  const list = f.raw('stripes');
  if (!Array.isArray(list) || list.length !== stripeCount * 2) {
    f.fail(`'stripes' does not hold ${stripeCount} name and extent pairs`, 'bad-segment');
  }
  const stripes: Stripe[] = [];
  for (let s = 0; s < stripeCount; s++) {
    const pv = (list as ConfigValue[])[s * 2];
    const extent = (list as ConfigValue[])[s * 2 + 1];
    if (
      typeof pv !== 'string' ||
      typeof extent !== 'number' ||
      !Number.isSafeInteger(extent) ||
      extent < 0
    ) {
      f.fail(`stripe ${s} is not a PV name and a starting extent`, 'bad-segment');
    }
    stripes.push({ pv: pv as string, extent: extent as number });
  }
  return { startExtent, extentCount, type, stripeSize, stripes, references: [] };
}

function readLv(name: string, section: ConfigSection, extentSize: number): LvEntry {
  const f = new Fields(section, `logical volume ${name}`);
  const segmentCount = f.int('segment_count', 1, MAX_SEGMENTS);
  const segments: Segment[] = [];
  let next = 0;
  for (let n = 1; n <= segmentCount; n++) {
    const segment = readSegment(
      f.sectionOf(`segment${n}`),
      `logical volume ${name} segment${n}`,
      extentSize,
    );
    // Segments follow each other from extent 0 (import_vsn1.c checks the same).
    if (segment.startExtent !== next) {
      f.fail(
        `segment${n} starts at extent ${segment.startExtent}, expected ${next}`,
        'bad-segment',
      );
    }
    next += segment.extentCount;
    if (!Number.isSafeInteger(next * extentSize)) f.fail('LV larger than 2^53 bytes', 'too-large');
    segments.push(segment);
  }
  return { name, id: f.str('id'), status: f.strings('status'), segments, extentCount: next };
}

/**
 * Parses LVM2 text metadata (as in a metadata area or a `vgcfgbackup` file) into the volume
 * group: its PVs, its LVs and their segments, every number checked.
 */
export function parseVolumeGroup(text: string, baseOffset = 0): VolumeGroup {
  const root = parseConfig(text, baseOffset);
  const candidates = [...root.sections].filter(([, s]) => s.sections.has('physical_volumes'));
  const top = new Fields(root, 'metadata');
  if (candidates.length !== 1) {
    top.fail(
      `${candidates.length} volume groups in one metadata text (expected 1)`,
      'missing-field',
    );
  }
  const [name, vgSection] = candidates[0]!;
  const vg = new Fields(vgSection, `volume group ${name}`);
  const format = vg.optionalStr('format');
  if (format !== null && format !== 'lvm2') vg.fail(`format '${format}' is not lvm2`, 'bad-value');
  const extentSize = vg.int('extent_size', 1, 2 ** 32) * SECTOR;
  const physicalVolumes: PvEntry[] = [];
  for (const [pvName, pvSection] of vg.sectionOf('physical_volumes').sections) {
    const pv = new Fields(pvSection, `physical volume ${pvName}`);
    const peStart = pv.int('pe_start') * SECTOR;
    const peCount = pv.int('pe_count');
    if (!Number.isSafeInteger(peStart + peCount * extentSize))
      pv.fail('extents beyond 2^53 bytes', 'too-large');
    physicalVolumes.push({
      name: pvName,
      id: pv.str('id'),
      device: pv.optionalStr('device'),
      peStart,
      peCount,
    });
  }
  const logicalVolumes: LvEntry[] = [];
  const lvs = vgSection.sections.get('logical_volumes');
  if (lvs) {
    if (lvs.sections.size > MAX_LVS) vg.fail(`more than ${MAX_LVS} logical volumes`, 'too-large');
    for (const [lvName, lvSection] of lvs.sections)
      logicalVolumes.push(readLv(lvName, lvSection, extentSize));
  }
  const pvNames = new Set(physicalVolumes.map((p) => p.name));
  for (const lv of logicalVolumes) {
    for (const segment of lv.segments) {
      for (const stripe of segment.stripes) {
        const pv = physicalVolumes.find((p) => p.name === stripe.pv);
        if (!pv || !pvNames.has(stripe.pv)) {
          vg.fail(
            `LV ${lv.name} names PV '${stripe.pv}', which the VG does not list`,
            'bad-segment',
          );
        }
        if (stripe.extent + segment.extentCount / segment.stripes.length > pv!.peCount) {
          vg.fail(`LV ${lv.name} has extents past the end of ${stripe.pv}`, 'out-of-range');
        }
      }
    }
  }
  return {
    name,
    id: vg.str('id'),
    seqno: vg.int('seqno'),
    extentSize,
    physicalVolumes,
    logicalVolumes,
  };
}
