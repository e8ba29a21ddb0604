import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { execa } from 'execa';
import { bytesReadBy, type Follow } from '../../util/progress.ts';
import { RunError, describe } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { dbnameArg, libpqEnv, pgError, query } from '../../pg/psql.ts';
import type { PgServer } from '../../pg/server.ts';
import { withCleanup } from '../../util/cleanup.ts';
import { timed, type DrillCheck } from '../../volume/drill-report.ts';
import type { RestoreJournal } from '../../volume/restore-journal.ts';
import type { PostgresArtifact } from './artifact.ts';
import { compareCounts, createScratch, drillScratchName } from './restore.ts';

/** pg_restore into a scratch database, row counts and VERIFY_SQL, then the database is dropped whatever happened. */
export async function drillDatabase(
  server: PgServer,
  maintenanceDb: string,
  path: string,
  artifact: PostgresArtifact,
  sql: string | undefined,
  log: Logger,
  signal: AbortSignal | undefined,
  journal: RestoreJournal,
  follow?: Follow,
): Promise<DrillCheck[]> {
  const scratch = drillScratchName();
  const checks: DrillCheck[] = [];
  // Its own cleanup stack: the scratch database is dropped as soon as this dump's checks are done. The
  // journal names it first, so a drill killed with -9 leaves nothing the next command will not drop.
  await withCleanup(log, async (cleanup) => {
    await journal.addDatabase(scratch);
    await createScratch(server, maintenanceDb, scratch, cleanup);
    log.info({ file: artifact.file, scratch }, 'drill: pg_restore into a scratch database');
    const restored = await timed(`restore ${artifact.file}`, async () => {
      if (artifact.tableCount > 0 && Object.keys(artifact.rowCounts).length === 0) {
        throw new RunError(`the dump holds ${artifact.tableCount} table(s) but the data of none (made with --schema-only?): it cannot bring data back`);
      }
      // Without owners and grants: the roles need not exist on a drill server, and the data is what counts.
      const args = ['--exit-on-error', '--no-password', '--no-owner', '--no-acl', `--jobs=${availableParallelism()}`, `--dbname=${dbnameArg(scratch)}`, path];
      const restoring = execa(join(server.client.binDir, 'pg_restore'), args, { env: libpqEnv(server.conn, scratch), reject: false, cancelSignal: signal });
      const stopProgress = follow?.(`drill: pg_restore ${artifact.file}`, bytesReadBy(restoring.pid), (await stat(path)).size) ?? (() => undefined);
      const result = await restoring.finally(stopProgress);
      if (result.isCanceled) throw new RunError(`stopped: ${describe(signal?.reason)}`);
      if (result.exitCode !== 0) throw new RunError(`pg_restore failed: ${pgError(result.stderr)}`);
      const counts = await compareCounts(server, scratch, artifact);
      if (counts.differences.length > 0) throw new RunError(`does not match the manifest: ${counts.differences.slice(0, 5).join('; ')}`);
      return `${counts.tables} tables and ${counts.rows} rows match the manifest${artifact.largeObjects > 0 ? `, ${artifact.largeObjects} large objects` : ''}`;
    });
    checks.push(restored);
    if (sql !== undefined && restored.ok) {
      checks.push(
        await timed(`VERIFY_SQL on ${artifact.source}`, async () => {
          const rows = await query(server.client, server.conn, scratch, sql);
          const value = rows[0]?.[0];
          if (value !== 't' && value !== 'true') throw new RunError(`VERIFY_SQL returned ${value === undefined ? 'no row' : `"${value}"`}, not true`);
          return 'returned true';
        }),
      );
    }
  });
  return checks;
}
