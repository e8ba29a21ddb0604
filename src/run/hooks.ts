import { execa } from 'execa';
import { RunError, describe, firstLine } from '../errors.ts';
import type { Logger } from '../log.ts';

const HOOK_TIMEOUT_MS = 3_600_000;

/**
 * Runs BACKUP_PRE_COMMAND or BACKUP_POST_COMMAND through the shell, its output logged line by line. The
 * signal (the daemon shutting down) and a one-hour timeout stop it.
 */
export async function runHook(
  which: 'BACKUP_PRE_COMMAND' | 'BACKUP_POST_COMMAND',
  command: string,
  env: Record<string, string>,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(HOOK_TIMEOUT_MS);
  const stopWhen = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
  // Its own process group: the shell's children (`sleep`, a script) hold the output open, so stopping
  // only the shell would leave the hook running and this waiting.
  const subprocess = execa(command, { shell: true, reject: false, all: true, env, detached: true });
  const stop = () => {
    try {
      if (subprocess.pid !== undefined) process.kill(-subprocess.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  stopWhen.addEventListener('abort', stop, { once: true });
  const result = await subprocess;
  stopWhen.removeEventListener('abort', stop);
  for (const line of (result.all ?? '').split('\n').filter((l) => l.trim() !== '')) log.info({ hook: which }, line);
  if (result.exitCode !== 0) {
    const why = timeout.aborted ? 'timed out after 1 hour' : signal?.aborted ? `stopped: ${describe(signal.reason)}` : `exit ${result.exitCode ?? result.signal}`;
    throw new RunError(`${which} failed (${why})${firstLine(result.all) === '' ? '' : `: ${firstLine(result.all)}`}`);
  }
}
