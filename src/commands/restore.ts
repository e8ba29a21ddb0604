import type { Context } from '../context.ts';
import { restore, rollback, type RestoreOptions } from '../run/restore.ts';
import type { PitrOptions } from '../run/pitr.ts';

/** `restore <file|run|latest>`: prints one line per restored target and the safety backup. */
export async function restoreCommand(ctx: Context, options: RestoreOptions): Promise<number> {
  const result = await restore(ctx, options);
  for (const o of result.outcomes) process.stdout.write(`restored ${o.source} into ${o.target}: ${o.check}\n`);
  for (const k of result.kept) process.stdout.write(`replaced database kept as ${k} (undo with: backup-sidecar restore --rollback <database>)\n`);
  if (result.safetyBackup !== undefined) process.stdout.write(`safety backup: ${result.safetyBackup}\n`);
  else if (result.kept.length === 0) process.stdout.write('no safety backup was needed or requested\n');
  return 0;
}

/** `restore --rollback <db>`: the copy RESTORE_SAFETY=keep kept goes back in. */
export async function rollbackCommand(ctx: Context, database: string, yes: boolean): Promise<number> {
  const result = await rollback(ctx, database, yes);
  process.stdout.write(`rolled back ${database} to ${result.from}${result.keptAs === undefined ? '' : `; what it replaced is kept as ${result.keptAs}`}\n`);
  return 0;
}

/** `restore --pitr <target> --pgdata <dir>`: a base backup and its WAL into a new data folder (see pitrRestore). */
export async function pitrCommand(ctx: Context, options: PitrOptions): Promise<number> {
  const { pitrRestore } = await import('../run/pitr.ts');
  process.stdout.write(`${(await pitrRestore(ctx, options)).join('\n')}\n`);
  return 0;
}
