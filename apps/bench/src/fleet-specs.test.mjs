import { parseSpec } from '@diskube/mkimage';
import { describe, expect, it } from 'vitest';
import { cloneLines, dayLines, FLEET_SCALES, prng, render, templateSpec } from './fleet-specs.mjs';

const full = /** @type {import('./fleet-specs.mjs').FleetScale} */ (FLEET_SCALES.full);
const quick = /** @type {import('./fleet-specs.mjs').FleetScale} */ (FLEET_SCALES.quick);
const MiB = 2 ** 20;

describe('fleet specs', () => {
  it('the full template is the issue size: ≥ 4 GiB GPT disk, an OS-like tree ≥ 1 GiB', () => {
    const t = templateSpec(full);
    const spec = parseSpec(t.text);
    expect(spec.size).toBeGreaterThanOrEqual(4 * 1024 * MiB);
    expect(spec.table).toBe('gpt');
    expect(t.tree.bytes).toBeGreaterThanOrEqual(1024 * MiB);
    expect(t.tree.files).toBeGreaterThanOrEqual(20_000);
    expect(t.tree.dirs).toBeGreaterThanOrEqual(2_000);
    // Both compressible and incompressible data.
    expect(t.tree.textBytes / t.tree.bytes).toBeGreaterThan(0.15);
    expect(t.tree.textBytes / t.tree.bytes).toBeLessThan(0.6);
  });

  it('is deterministic', () => {
    expect(templateSpec(quick).text).toBe(templateSpec(quick).text);
    const a = prng(3);
    const b = prng(3);
    expect(Array.from({ length: 5 }, () => a(1000))).toEqual(
      Array.from({ length: 5 }, () => b(1000)),
    );
  });

  it('gives every clone different garbage, and only the first ones big unique data', () => {
    const clones = Array.from({ length: full.clones }, (_, k) => cloneLines(full, k));
    const garbage = clones.map((c) => c.root.find((l) => l.includes('garbage')));
    expect(new Set(garbage).size).toBe(full.clones);
    const big = clones.filter((c) => c.uniqueBytes > full.bigUniqueMiB * MiB);
    expect(big.length).toBe(full.bigClones);
    const t = templateSpec(quick);
    const c = cloneLines(quick, 1);
    expect(() =>
      parseSpec(render(quick, [...t.root, ...c.root], [...t.ntfs, ...c.ntfs])),
    ).not.toThrow();
  });

  it('changes about dayPercent % of the used bytes each day, differently per clone and day', () => {
    const used = 2048 * MiB;
    const days = [1, 2, 3].map((d) => dayLines(full, 4, d, used, 500));
    for (const day of days) {
      expect(day.changedBytes / used).toBeGreaterThan(0.015);
      expect(day.changedBytes / used).toBeLessThan(0.025);
    }
    expect(days[0]?.root).not.toEqual(days[1]?.root);
    expect(dayLines(full, 5, 1, used, 500).root).not.toEqual(days[0]?.root);
  });
});
