/**
 * The one place that handles SIGTERM and SIGINT. Its listeners are installed before any command runs and
 * stay for the life of the process: signal-exit (inside execa and proper-lockfile) re-raises a signal only
 * when its own listeners are all the process has, so with these always present no library ever kills the
 * process behind our back, whatever copies of it are loaded.
 */
export type SignalHandler = (signal: NodeJS.Signals, count: number) => void;

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
let handler: SignalHandler | undefined;
let count = 0;
let installed = false;

/** Installs the process listeners once; until a command sets its handler, a signal ends the process (exit 1). */
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const name of SIGNALS) {
    process.on(name, () => {
      count += 1;
      if (handler === undefined) process.exit(1);
      handler(name, count);
    });
  }
}

/** Routes every later signal to `next` (the command running now). */
export function onSignal(next: SignalHandler): void {
  handler = next;
}

/**
 * For a one-off command (backup, restore, verify): the first signal aborts the returned signal, so
 * children are stopped and the cleanup runs, and the command fails (exit 1); a second one ends the process
 * at once.
 */
export function abortOnSignal(say: (line: string) => void): AbortSignal {
  const controller = new AbortController();
  onSignal((name, n) => {
    if (n === 1) {
      say(`${name}: stopping, cleaning up (send it again to stop at once)`);
      controller.abort(new Error(`stopped by ${name}`));
    } else {
      say(`${name} again: stopping at once`);
      process.exit(1);
    }
  });
  return controller.signal;
}
