import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runFuzz } from './runner.mjs';
import { TARGETS } from './targets.mjs';

// A fixed seed, so CI runs the same few hundred cases every time; `pnpm fuzz` runs long, random ones.
const SEED = 20261201;
const CASES = Number(process.env.DISKUBE_FUZZ_CASES ?? 300);

for (const [name, target] of Object.entries(TARGETS)) {
  const missing = target.tools.filter(
    (t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0,
  );
  if (missing.length > 0) {
    const message = `fuzz target ${name}: missing system tools ${missing.join(', ')} (run scripts/setup.sh)`;
    if (process.env.CI === 'true') throw new Error(message);
    console.warn(`\n*** ${message}: SKIPPED ***\n`);
  }
  // Targets whose seeds are large (btrfs: 128 MiB copied per mutant) run fewer cases here.
  const cases = Math.min(CASES, target.cases ?? CASES);
  describe.runIf(missing.length === 0)(`fuzz ${name}`, () => {
    it(`${cases} mutants: no crash, no hang, no untyped error, input errors never blamed on the caller`, async () => {
      const report = await runFuzz({ target: name, cases, seed: SEED });
      const lines = report.failures.map(
        (f) => `case ${f.case} (${f.seed}) ${f.kind}: ${f.message} [${f.mutation}]`,
      );
      expect(lines).toEqual([]);
      const refused = Object.values(report.refused).reduce((a, b) => a + b, 0);
      expect(report.accepted + refused).toBe(cases);
      if (target.everyByteChecked) {
        expect(report.accepted, 'a mutant got past every checksum').toBe(0);
      } else {
        // The mutants must exercise both paths, or the target tests nothing.
        expect(report.accepted).toBeGreaterThan(0);
        expect(refused).toBeGreaterThan(0);
      }
    });
  });
}
