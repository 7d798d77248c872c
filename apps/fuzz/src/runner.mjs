// The fuzz loop: mutants of each seed image go to a worker thread; every case must end in an
// acceptance or a typed refusal (DiskubeError) within the time limit. Crashes (untyped errors),
// hangs, out-of-memory and refusals that blame the caller (INVALID_ARGUMENT) for the input's
// bytes are failures.
import { Worker } from 'node:worker_threads';
import { mutant } from './mutate.mjs';
import { TARGETS } from './targets.mjs';

/**
 * @typedef {{ case: number, seed: string, kind: string, mutation: string, message: string }} Failure
 * @typedef {{ target: string, cases: number, accepted: number, refused: Record<string, number>, failures: Failure[], seconds: number }} FuzzReport
 */

/** Input-caused errors may be any of these; INVALID_ARGUMENT is for callers' mistakes only. */
const INPUT_CODES = new Set(['CORRUPT', 'UNSUPPORTED', 'DIRTY', 'IO']);

function startWorker() {
  return new Worker(new URL('./worker.mjs', import.meta.url), {
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
}

/**
 * @param {{ target: string, cases: number, seed: number, timeoutMs?: number,
 *           onCase?: (n: number) => void }} options
 * @returns {Promise<FuzzReport>}
 */
export async function runFuzz({ target, cases, seed, timeoutMs = 20_000, onCase }) {
  const definition = TARGETS[target];
  if (!definition) throw new Error(`unknown target ${target}`);
  const started = performance.now();
  const seeds = await definition.prepare();
  /** @type {FuzzReport} */
  const report = { target, cases, accepted: 0, refused: {}, failures: [], seconds: 0 };
  let worker = startWorker();
  try {
    for (let i = 0; i < cases; i++) {
      const base = /** @type {import('./targets.mjs').Seed} */ (seeds[i % seeds.length]);
      const { bytes, description, touched } = mutant(base.bytes, base.regions, seed, i);
      const fail = (/** @type {string} */ kind, /** @type {string} */ message) =>
        report.failures.push({ case: i, seed: base.name, kind, mutation: description, message });
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ outcome: 'hang' }), timeoutMs);
        const done = (/** @type {unknown} */ value) => {
          clearTimeout(timer);
          worker.off('message', onMessage);
          worker.off('error', onError);
          resolve(value);
        };
        const onMessage = (/** @type {{ id: number }} */ m) => m.id === i && done(m);
        const onError = (/** @type {Error} */ e) => done({ outcome: 'died', message: e.message });
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.postMessage({ id: i, target, bytes }, [/** @type {ArrayBuffer} */ (bytes.buffer)]);
      });
      const r =
        /** @type {{ outcome: string, code?: string, reason?: string, message?: string }} */ (
          result
        );
      if (r.outcome === 'accepted') {
        report.accepted++;
        const used = /** @type {{ result?: import('./targets.mjs').UsedSummary | null }} */ (result)
          .result;
        const lost = base.referenced && used ? droppedBlocks(base.referenced, touched, used) : null;
        if (lost) fail('dropped-blocks', lost);
      } else if (r.outcome === 'refused') {
        const key = `${r.code}${r.reason ? `/${r.reason}` : ''}`;
        report.refused[key] = (report.refused[key] ?? 0) + 1;
        if (!INPUT_CODES.has(r.code ?? '')) fail(`refused as ${r.code}`, r.message ?? '');
      } else {
        fail(r.outcome, r.message ?? `no answer within ${timeoutMs} ms`);
        // A hung or dead worker cannot be trusted with the next case.
        await worker.terminate();
        worker = startWorker();
      }
      onCase?.(i);
    }
  } finally {
    await worker.terminate();
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/**
 * When no mutation touched a block bitmap, an accepted map must keep every block the seed's
 * inodes reference: a mutant that makes the driver drop one would lose data silently.
 * @param {import('./targets.mjs').ReferencedBlocks} referenced
 * @param {Array<[number, number]>} touched
 * @param {import('./targets.mjs').UsedSummary} used
 * @returns {string | null}
 */
export function droppedBlocks(referenced, touched, used) {
  const hitsBitmap = touched.some(([o, l]) =>
    referenced.bitmaps.some(([bo, bl]) => o < bo + bl && bo < o + l),
  );
  if (hitsBitmap) return null;
  const scale = referenced.blockSize;
  // Used runs in bytes, sorted; every referenced byte range must lie inside them.
  const usedBytes = used.ranges.map(
    ([f, n]) => /** @type {[number, number]} */ ([f * used.blockSize, (f + n) * used.blockSize]),
  );
  let missing = 0;
  let example = -1;
  let u = 0;
  for (const [first, count] of referenced.blocks) {
    for (let b = first; b < first + count; b++) {
      const start = b * scale;
      const end = start + scale;
      while (u < usedBytes.length && /** @type {[number, number]} */ (usedBytes[u])[1] <= start)
        u++;
      const run = usedBytes[u];
      if (!run || run[0] > start || run[1] < end) {
        missing++;
        if (example < 0) example = b;
      }
    }
  }
  return missing > 0
    ? `${missing} referenced blocks missing from the used map (block ${example} first)`
    : null;
}
