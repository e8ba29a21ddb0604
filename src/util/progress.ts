import prettyBytes from 'pretty-bytes';
import type { Logger } from '../log.ts';

/** Bytes per second as a person reads it: "12.3 MiB/s". */
export function rate(bytes: number, ms: number): string {
  return `${prettyBytes(ms > 0 ? (bytes * 1000) / ms : 0, { binary: true })}/s`;
}

/**
 * Logs a long transfer's progress every `everyMs` (LOG_PROGRESS_EVERY): bytes so far, rate and time
 * elapsed, so that a dump or download of hours is never silent. Returns the function that stops it.
 */
export function progress(log: Logger, what: string, bytes: () => number, everyMs: number): () => void {
  const started = Date.now();
  const timer = setInterval(() => {
    const ms = Date.now() - started;
    const n = bytes();
    log.info({ what, bytes: n, elapsedMs: ms }, `${what}: ${prettyBytes(n, { binary: true })} in ${Math.round(ms / 1000)} s (${rate(n, ms)})`);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
