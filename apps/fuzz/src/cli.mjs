// `pnpm fuzz [--target ext,ntfs,…] [--cases N] [--seed S]`: long local runs of the fuzz targets.
// Prints one line per target and every failure with the mutation that reproduces it.
import { parseArgs } from 'node:util';
import { runFuzz } from './runner.mjs';
import { TARGETS } from './targets.mjs';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: Object.keys(TARGETS).join(',') },
    cases: { type: 'string', default: '10000' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
  },
});
const cases = Number(values.cases);
const seed = Number(values.seed);
let failed = 0;
for (const target of values.target.split(',')) {
  const report = await runFuzz({
    target,
    cases,
    seed,
    onCase: (n) => {
      if (process.stderr.isTTY && n % 50 === 0) process.stderr.write(`\r${target} ${n}/${cases}`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const refused = Object.entries(report.refused)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  console.log(
    `${target}: ${report.cases} cases (seed ${seed}) in ${report.seconds.toFixed(1)} s: ${report.accepted} accepted, refused ${refused || 'none'}; ${report.failures.length} failures`,
  );
  for (const f of report.failures) {
    console.log(
      `  case ${f.case} (${f.seed}): ${f.kind}: ${f.message}\n    mutation: ${f.mutation}`,
    );
  }
  failed += report.failures.length;
}
process.exitCode = failed > 0 ? 1 : 0;
