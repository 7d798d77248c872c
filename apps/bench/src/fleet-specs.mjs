/**
 * The fleet benchmark's disks, as @diskube/mkimage DSL text. A clone is the template's spec plus
 * lines of its own, and a day is the clone's spec plus that day's lines: the DSL builds "a spec
 * plus more lines" as an image that differs from the first only in the blocks those lines touch,
 * which is what cloning a template disk and then running the VM would do.
 *
 * Everything is derived from small integer seeds, so the same scale gives the same bytes.
 * Clone and day data is random (incompressible): the "unique data" and "changed data" the
 * targets compare against are then the same whether counted raw or compressed.
 */

/**
 * @typedef {object} FleetScale
 * @property {string} name
 * @property {number} diskMiB whole GPT disk
 * @property {number} rootMiB ext4 root partition (the rest of the disk is NTFS)
 * @property {number} treeMiB OS-like tree on the root, at least this many MiB of file data
 * @property {number} ntfsDataMiB template data on the NTFS partition
 * @property {number} clones
 * @property {number} bigClones clones with a large amount of unique data
 * @property {number} bigUniqueMiB unique data of each of those
 * @property {number} ownMiB each clone's own data (database file, logs) besides configs
 * @property {number} garbageMiB random files each clone writes and deletes (ext4 and NTFS)
 * @property {number} days
 * @property {number} dayPercent share of a VM's used bytes each day changes
 */

/** @type {Record<string, FleetScale>} */
export const FLEET_SCALES = {
  // A few minutes on a loaded 2-core machine.
  quick: {
    name: 'quick',
    diskMiB: 1024,
    rootMiB: 640,
    treeMiB: 192,
    ntfsDataMiB: 64,
    clones: 3,
    bigClones: 1,
    bigUniqueMiB: 48,
    ownMiB: 24,
    garbageMiB: 48,
    days: 5,
    dayPercent: 2,
  },
  // The size: 4 GiB disks, a 1 GiB+ tree, 10 clones, three with a few hundred MiB.
  full: {
    name: 'full',
    diskMiB: 4096,
    rootMiB: 2816,
    treeMiB: 1100,
    ntfsDataMiB: 384,
    clones: 10,
    bigClones: 3,
    bigUniqueMiB: 300,
    ownMiB: 64,
    garbageMiB: 256,
    days: 5,
    dayPercent: 2,
  },
};

/** Small deterministic PRNG (mulberry32): integers in [0, n). */
export function prng(/** @type {number} */ seed) {
  let a = seed >>> 0;
  return (/** @type {number} */ n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n) >>> 0;
  };
}

/**
 * File size classes of the OS-like tree, roughly a Linux root: most files are a few KiB, a
 * few are MiBs. These are random (binaries, libraries, compressed assets); the docs and configs
 * written beside them are text and compress well.
 */
const CLASSES = [
  { dir: 'bin', min: 2, max: 12, size: 'small' },
  { dir: 'lib', min: 1, max: 8, size: 48 << 10 },
  { dir: 'lib64', min: 0, max: 2, size: 256 << 10 },
  { dir: 'share', min: 2, max: 16, size: 'small' },
  { dir: 'locale', min: 0, max: 6, size: 12 << 10 },
];
const TEXT_SIZES = [700, 1800, 3900, 9000, 22000, 61000, 140000];

/**
 * The OS-like tree on the ext4 root: thousands of directories, tens of thousands of files at
 * full scale. Returns DSL content lines and what they hold.
 *
 * @param {FleetScale} s
 */
export function osTree(s) {
  const pick = prng(7);
  /** @type {string[]} */
  const lines = [];
  let bytes = 0;
  let files = 0;
  let dirs = 0;
  let textBytes = 0;
  for (let p = 0; bytes < s.treeMiB * 2 ** 20; p++) {
    const pkg = `pkg${String(p).padStart(4, '0')}`;
    dirs += 3;
    for (const [c, cls] of CLASSES.entries()) {
      const count = cls.min + pick(cls.max - cls.min + 1);
      if (count === 0) continue;
      const dir = `/usr/${cls.dir}/${pkg}`;
      lines.push(
        `files ${dir} ${count} ${cls.size === 'small' ? 'small' : cls.size} seed=${p * 16 + c}`,
      );
      files += count;
      dirs += 1;
      bytes += count * (cls.size === 'small' ? 1536 : /** @type {number} */ (cls.size));
    }
    // Text: docs and configs, each file a different length of the text stream.
    const docs = 2 + pick(9);
    for (let i = 0; i < docs; i++) {
      const size = /** @type {number} */ (TEXT_SIZES[pick(TEXT_SIZES.length)]) + pick(4096);
      lines.push(`file /usr/share/doc/${pkg}/doc${i}.txt ${size} text`);
      bytes += size;
      textBytes += size;
      files += 1;
    }
    if (p % 4 === 0) {
      const size = 200 + pick(4000);
      lines.push(`file /etc/${pkg}/${pkg}.conf ${size} text`);
      bytes += size;
      textBytes += size;
      files += 1;
      dirs += 1;
    }
    // A few big files (kernels, firmware, databases of packages).
    if (p % 97 === 13) {
      const size = (2 + pick(12)) << 20;
      lines.push(`file /usr/lib/firmware/${pkg}.bin ${size} random seed=${50000 + p}`);
      bytes += size;
      files += 1;
    }
  }
  return { lines, bytes, files, dirs, textBytes };
}

/** @param {FleetScale} s */
export function templateSpec(s) {
  const tree = osTree(s);
  const ntfs = [
    `files /Data/reports ${Math.round(s.ntfsDataMiB * 4)} 96K seed=801`,
    `file /Data/archive.bin ${Math.round(s.ntfsDataMiB * 0.5)}M random seed=802`,
    `file /Data/notes.txt ${Math.round(s.ntfsDataMiB * 0.125)}M text`,
  ];
  const root = [...tree.lines, 'file /etc/hostname "template"'];
  return {
    tree,
    root,
    ntfs,
    text: render(s, root, ntfs),
  };
}

/** Renders a disk from its ext4 and NTFS content lines. */
export function render(
  /** @type {FleetScale} */ s,
  /** @type {string[]} */ root,
  /** @type {string[]} */ ntfs,
) {
  return [
    `disk ${s.diskMiB}M gpt`,
    `  partition ${s.rootMiB}M ext4 block=4K label=root`,
    ...root.map((l) => `    ${l}`),
    '  partition rest ntfs label=data',
    ...ntfs.map((l) => `    ${l}`),
    '',
  ].join('\n');
}

/**
 * Clone `k`'s own lines: its name and configs, logs and data of its own, for the first
 * `bigClones` a large unique data file, and garbage written then deleted (different in every
 * clone). `uniqueBytes` counts the data that stays (the garbage does not).
 *
 * @param {FleetScale} s
 * @param {number} k
 */
export function cloneLines(s, k) {
  const seed = 10_000 + k * 100;
  const big = k < s.bigClones;
  const MiB = 2 ** 20;
  const own = s.ownMiB * MiB;
  const root = [
    `file /etc/hostname.vm "vm-${String(k).padStart(2, '0')}\\n"`,
    `file /etc/fleet/vm.conf "name=vm-${k}\\nip=10.0.0.${10 + k}\\nrole=${big ? 'db' : 'web'}\\n"`,
    `files /var/log/vm ${200 + 20 * k} small seed=${seed + 1}`,
    `file /var/lib/app/db.bin ${Math.round(own * 0.75)} random seed=${seed + 2}`,
    `file /var/log/app.log ${Math.round(own * 0.2)} random seed=${seed + 3}`,
    `file /var/tmp/garbage.bin ${s.garbageMiB}M random seed=${seed + 4}`,
    'delete /var/tmp/garbage.bin',
  ];
  const ntfs = [
    `file /Data/vm/${k}.cfg "vm ${k}"`,
    `file /Data/garbage.bin ${Math.round(s.garbageMiB / 4)}M random seed=${seed + 5}`,
    'delete /Data/garbage.bin',
  ];
  if (big) ntfs.push(`file /Data/unique.bin ${s.bigUniqueMiB}M random seed=${seed + 6}`);
  // The small log files average 1536 bytes.
  const uniqueBytes =
    (200 + 20 * k) * 1536 +
    Math.round(own * 0.75) +
    Math.round(own * 0.2) +
    (big ? s.bigUniqueMiB * MiB : 0);
  return { root, ntfs, uniqueBytes };
}

/**
 * Day `d` (1…) of clone `k`: about `dayPercent` % of `usedBytes` changed. Half is overwritten in
 * place inside the clone's database file, the rest is new files (logs on ext4, a document on
 * NTFS); a package directory of the template is deleted and the previous day's NTFS document
 * too. `changedBytes` is what was written (overwritten plus new).
 *
 * @param {FleetScale} s
 * @param {number} k
 * @param {number} d
 * @param {number} usedBytes
 * @param {number} treePackages packages in the template tree
 */
export function dayLines(s, k, d, usedBytes, treePackages) {
  const pick = prng(100_000 + k * 100 + d);
  const seed = 20_000 + k * 100 + d * 10;
  const budget = (usedBytes * s.dayPercent) / 100;
  const db = Math.round(s.ownMiB * 2 ** 20 * 0.75);
  const ranges = 8;
  const rangeBytes = Math.max(4096, Math.floor(budget / 2 / ranges / 4096) * 4096);
  /** @type {string[]} */
  const root = [];
  let changed = 0;
  for (let r = 0; r < ranges; r++) {
    const at = pick(Math.max(1, Math.floor((db - rangeBytes) / 4096))) * 4096;
    root.push(`overwrite /var/lib/app/db.bin ${at} ${rangeBytes} random seed=${seed + r}`);
    changed += rangeBytes;
  }
  const newLog = Math.floor(budget * 0.3);
  const smallCount = Math.max(10, Math.round((budget * 0.1) / 1536));
  root.push(`file /var/log/day${d}.log ${newLog} random seed=${seed + 8}`);
  root.push(`files /var/log/day${d} ${smallCount} small seed=${seed + 9}`);
  changed += newLog + smallCount * 1536;
  // Package removal: a different template directory every day and clone.
  const pkg = `pkg${String((k * 37 + d * 11) % treePackages).padStart(4, '0')}`;
  root.push(`delete /usr/share/doc/${pkg}`);
  const doc = Math.floor(budget * 0.1);
  const ntfs = [`file /Data/day${d}.doc ${doc} random seed=${seed + 7}`];
  if (d > 1) ntfs.push(`delete /Data/day${d - 1}.doc`);
  changed += doc;
  return { root, ntfs, changedBytes: changed };
}
