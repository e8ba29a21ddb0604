/** A mistake in how the tool was called or configured: exit code 2, message shown as is. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An expected failure of a run (server down, corrupt file, disk full): exit code 1, message shown as is. */
export class RunError extends Error {
  override name = 'RunError';
}

/** The first line of a child process's stderr (or the message), for one-line errors. */
export function firstLine(text: string | undefined): string {
  const line = (text ?? '').split('\n').map((l) => l.trim()).find((l) => l.length > 0);
  return line ?? '';
}

/** A short description of any thrown value. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Throws a one-line RunError when the command was told to stop (a signal, the daemon's shutdown). */
export function stopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new RunError(`stopped: ${describe(signal.reason)}`);
}
