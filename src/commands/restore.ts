import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { restore, type RestoreOptions } from '../run/restore.ts';

/** `restore <file|run|latest>`: prints one line per restored target and the safety backup. */
export async function restoreCommand(config: Config, log: Logger, options: RestoreOptions, signal: AbortSignal | undefined): Promise<number> {
  const result = await restore(config, log, options, signal);
  for (const o of result.outcomes) process.stdout.write(`restored ${o.source} into ${o.target}: ${o.check}\n`);
  process.stdout.write(result.safetyBackup === undefined ? 'no safety backup was needed or requested\n' : `safety backup: ${result.safetyBackup}\n`);
  return 0;
}
