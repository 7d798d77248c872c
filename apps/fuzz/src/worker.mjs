// Runs mutants for the fuzz runner, one at a time, and reports how each ended. A hang or an
// allocation blow-up ends the worker; the runner sees the silence and starts a new one.
import { parentPort } from 'node:worker_threads';
import { DiskubeError } from '@diskube/core';
import { TARGETS } from './targets.mjs';

if (!parentPort) throw new Error('worker.mjs runs as a worker thread');
const port = parentPort;

port.on('message', async (/** @type {{ id: number, target: string, bytes: Uint8Array }} */ job) => {
  const target = TARGETS[job.target];
  if (!target) throw new Error(`unknown target ${job.target}`);
  try {
    const result = await target.run(job.bytes);
    port.postMessage({ id: job.id, outcome: 'accepted', result: summary(result) });
  } catch (error) {
    if (DiskubeError.isInstance(error)) {
      port.postMessage({
        id: job.id,
        outcome: 'refused',
        code: error.code,
        reason: error.reason ?? null,
        message: error.message,
      });
    } else {
      const e = /** @type {Error} */ (error);
      port.postMessage({
        id: job.id,
        outcome: 'untyped',
        message: `${e?.name}: ${e?.message}`,
        stack: e?.stack ?? null,
      });
    }
  }
});

/** Only a used-map summary travels back; other results are not needed by the runner. */
function summary(/** @type {unknown} */ result) {
  const r = /** @type {{ blockSize?: unknown, ranges?: unknown }} */ (result);
  return r && typeof r.blockSize === 'number' && Array.isArray(r.ranges) ? r : null;
}
