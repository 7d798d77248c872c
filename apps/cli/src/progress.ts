import { formatBytes } from './format.js';

export interface ProgressReporter {
  update(done: number, total: number): void;
  finish(): void;
}

/**
 * A one-line progress bar on stderr (bytes, rate, ETA), drawn only when stderr is a TTY and
 * `--json` is off; otherwise silent, so scripts and pipes see clean output.
 */
export function progressReporter(label: string, enabled: boolean): ProgressReporter {
  const stream = process.stderr;
  if (!enabled || !stream.isTTY) return { update() {}, finish() {} };
  const started = performance.now();
  let lastDraw = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = performance.now();
      if (now - lastDraw < 100 && done < total) return;
      lastDraw = now;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      const eta = rate > 0 ? Math.max(0, (total - done) / rate) : 0;
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const width = 24;
      const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
      stream.write(
        `\r${label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${eta.toFixed(0)}s\x1b[K`,
      );
      drawn = true;
    },
    finish() {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}
