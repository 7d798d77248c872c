import { describe, expect, it } from 'vitest';
import { parseVolumeGroup } from './metadata.js';
import { parseConfig } from './text.js';

const VG = (lvs: string, extra = '') => `vg0 {
id = "vgid"
seqno = 7
format = "lvm2" # informational
extent_size = 8192
${extra}
physical_volumes {
pv0 {
id = "pv-id"
device = "/dev/sda2"	# Hint only
pe_start = 2048
pe_count = 100
}
}
logical_volumes {
${lvs}
}
}
contents = "Text Format Volume Group"
version = 1
`;

const LINEAR = `root {
id = "lvid"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1 # linear
stripes = [
"pv0", 50
]
}
segment2 {
start_extent = 10
extent_count = 4
type = "striped"
stripe_count = 2
stripe_size = 128
stripes = ["pv0", 0, "pv0", 2]
}
}`;

describe('parseConfig', () => {
  it('reads sections, integers, strings with escapes, arrays and comments', () => {
    const root = parseConfig('a = 1\nb = "x\\"y" # c\nlist = [ "p", 2 ]\ns {\n t = -3\n}\n');
    expect(root.values.get('a')).toBe(1);
    expect(root.values.get('b')).toBe('x"y');
    expect(root.values.get('list')).toEqual(['p', 2]);
    expect(root.sections.get('s')!.values.get('t')).toBe(-3);
  });

  it.each([
    ['a = ', 'bad-syntax'],
    ['a = "open', 'bad-syntax'],
    ['s { a = 1', 'bad-syntax'],
    ['}', 'bad-syntax'],
    ['a = [1, 2', 'bad-syntax'],
    ['a = 99999999999999999999', 'too-large'],
    [`${'s {'.repeat(40)}${'}'.repeat(40)}`, 'too-large'],
    ['s {}\ns {}', 'bad-value'],
  ])('refuses %j as CORRUPT %s', (text, reason) => {
    expect(() => parseConfig(text, 1000)).toThrow(
      expect.objectContaining({ code: 'CORRUPT', reason }),
    );
  });
});

describe('parseVolumeGroup', () => {
  it('gives the VG, its PVs and LVs with linear and striped segments in bytes', () => {
    const vg = parseVolumeGroup(VG(LINEAR));
    expect(vg).toMatchObject({ name: 'vg0', id: 'vgid', seqno: 7, extentSize: 4 << 20 });
    expect(vg.physicalVolumes).toEqual([
      { name: 'pv0', id: 'pv-id', device: '/dev/sda2', peStart: 1 << 20, peCount: 100 },
    ]);
    const [root] = vg.logicalVolumes;
    expect(root!.extentCount).toBe(14);
    expect(
      root!.segments.map((s) => [s.startExtent, s.extentCount, s.stripeSize, s.stripes]),
    ).toEqual([
      [0, 10, 0, [{ pv: 'pv0', extent: 50 }]],
      [
        10,
        4,
        65536,
        [
          { pv: 'pv0', extent: 0 },
          { pv: 'pv0', extent: 2 },
        ],
      ],
    ]);
  });

  it('keeps the names a segment of another type refers to', () => {
    const thin = `pool {
id = "p"
status = ["READ"]
segment_count = 1
segment1 {
start_extent = 0
extent_count = 10
type = "thin-pool"
metadata = "pool_tmeta"
pool = "pool_tdata"
}
}`;
    const [pool] = parseVolumeGroup(VG(thin)).logicalVolumes;
    expect(pool!.segments[0]!.type).toBe('thin-pool');
    expect(pool!.segments[0]!.references).toEqual(
      expect.arrayContaining(['pool_tmeta', 'pool_tdata']),
    );
  });

  it.each([
    [
      'a gap between segments',
      LINEAR.replace('start_extent = 10', 'start_extent = 11'),
      'bad-segment',
    ],
    [
      'extents not divisible into stripes',
      LINEAR.replace('extent_count = 4', 'extent_count = 5').replace(
        'segment_count = 2',
        'segment_count = 2',
      ),
      'bad-segment',
    ],
    [
      'a stripe list of the wrong length',
      LINEAR.replace('stripes = ["pv0", 0, "pv0", 2]', 'stripes = ["pv0", 0]'),
      'bad-segment',
    ],
    ['an unknown PV', LINEAR.replace('"pv0", 50', '"pv9", 50'), 'bad-segment'],
    ['extents past the PV', LINEAR.replace('"pv0", 50', '"pv0", 95'), 'out-of-range'],
    [
      'a missing segment',
      LINEAR.replace('segment_count = 2', 'segment_count = 3'),
      'missing-field',
    ],
    [
      'a stripe size that does not divide the extent',
      LINEAR.replace('stripe_size = 128', 'stripe_size = 96'),
      'bad-segment',
    ],
    [
      'a string for a number',
      LINEAR.replace('extent_count = 10', 'extent_count = "10"'),
      'bad-value',
    ],
  ])('refuses %s', (_, lvs, reason) => {
    expect(() => parseVolumeGroup(VG(lvs))).toThrow(
      expect.objectContaining({ code: 'CORRUPT', reason }),
    );
  });

  it('refuses text without a VG and a VG without extent_size', () => {
    expect(() => parseVolumeGroup('contents = "x"\n')).toThrow(
      expect.objectContaining({ reason: 'missing-field' }),
    );
    expect(() => parseVolumeGroup(VG(LINEAR).replace('extent_size = 8192', ''))).toThrow(
      expect.objectContaining({ reason: 'missing-field' }),
    );
  });
});
