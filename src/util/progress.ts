import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import prettyBytes from 'pretty-bytes';
import type { Logger } from '../log.ts';

/** Bytes per second as a person reads it: "12.3 MiB/s". */
export function rate(bytes: number, ms: number): string {
  return `${prettyBytes(ms > 0 ? (bytes * 1000) / ms : 0, { binary: true })}/s`;
}

export interface ProgressOptions {
  /** LOG_PROGRESS_EVERY: how often a log line says how far it got. */
  everyMs: number;
  /** The expected total, when known (a download, a restore); a dump's is the previous run's size, a guess. */
  total?: number;
  /** A live line on stderr (a terminal, pretty logs) instead of the periodic log lines. */
  live?: boolean;
}

const bytesText = (n: number) => prettyBytes(n, { binary: true });

/**
 * Follows a long transfer (dump, upload, download, restore, drill): every `everyMs` a log line with the
 * bytes so far, rate and time elapsed, so that a job of hours is never silent; on a terminal, a live
 * line instead (cli-progress). Returns the function that stops it.
 */
export function progress(log: Logger, what: string, bytes: () => number, options: ProgressOptions): () => void {
  const started = Date.now();
  const { total } = options;
  if (options.live === true) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: (_options, params) => {
          const ms = Date.now() - started;
          const share = params.total > 0 ? ` ${Math.min(100, Math.round((params.value / params.total) * 100))}% of ${bytesText(params.total)}` : '';
          return `${what}: ${bytesText(params.value)}${share}, ${rate(params.value, ms)}, ${Math.round(ms / 1000)} s`;
        },
        hideCursor: false,
        clearOnComplete: true,
        fps: 4,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total ?? 0, 0);
    const timer = setInterval(() => bar.update(bytes()), 250);
    timer.unref();
    return () => {
      clearInterval(timer);
      bar.stop();
    };
  }
  const timer = setInterval(() => {
    const ms = Date.now() - started;
    const n = bytes();
    const share = total !== undefined && total > 0 ? ` of ${bytesText(total)} (${Math.min(100, Math.round((n / total) * 100))}%)` : '';
    log.info({ what, bytes: n, total, elapsedMs: ms }, `${what}: ${bytesText(n)}${share} in ${Math.round(ms / 1000)} s (${rate(n, ms)})`);
  }, options.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Follows one transfer (see progress), with the settings of the command: returns the function that stops it. */
export type Follow = (what: string, bytes: () => number, total?: number) => () => void;

/**
 * Bytes a child process has read so far (Linux: /proc/<pid>/io), to follow pg_restore or tar reading
 * a file; 0 where that cannot be known.
 */
export function bytesReadBy(pid: number | undefined): () => number {
  let last = 0;
  return () => {
    if (pid === undefined) return last;
    try {
      last = Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? last);
    } catch {
      // The process has ended: its last count stands.
    }
    return last;
  };
}
