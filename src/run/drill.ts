import { availableParallelism, tmpdir } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { runTrust } from '../app.ts';
import type { Config } from '../config/config.ts';
import { RunError, UsageError, describe, firstLine } from '../errors.ts';
import type { Logger } from '../log.ts';
import { PARTIAL_DIR } from '../naming.ts';
import type { GlobalsArtifact, MediaArtifact, PostgresArtifact } from '../manifest.ts';
import { dbnameArg, libpqEnv, pgError, query } from '../pg/psql.ts';
import { checkGlobalsFile } from '../kinds/globals/dumpall.ts';
import { compareCounts, createScratch, drillScratchName } from '../kinds/postgres/restore.ts';
import { connectServer, type PgServer } from '../pg/server.ts';
import { COMPRESS_FLAG, measureTree } from '../kinds/media/tarball.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { VERIFY_FILE, type DrillCheck, type DrillReport } from '../volume/drill-report.ts';
import { drillDirPrefix, withVolumeLock } from '../volume/lock.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { withCleanup } from '../util/cleanup.ts';
import { RestoreJournal } from '../volume/restore-journal.ts';
import { decryptSelection } from './decrypt.ts';
import { resolveWithOffsite } from './download.ts';
import { remoteTargets } from '../offsite/targets.ts';
import { checkChecksums } from './restore.ts';


async function timed(check: string, work: () => Promise<string>): Promise<DrillCheck> {
  const started = Date.now();
  try {
    return { check, ok: true, detail: await work(), durationMs: Date.now() - started };
  } catch (error) {
    return { check, ok: false, detail: describe(error), durationMs: Date.now() - started };
  }
}

function failed(check: string, error: unknown): DrillCheck {
  return { check, ok: false, detail: describe(error), durationMs: 0 };
}

/** pg_restore into a scratch database, row counts and VERIFY_SQL, then the database is dropped whatever happened. */
async function drillDatabase(
  server: PgServer,
  maintenanceDb: string,
  path: string,
  artifact: PostgresArtifact,
  sql: string | undefined,
  log: Logger,
  signal: AbortSignal | undefined,
  journal: RestoreJournal,
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
      const result = await execa(join(server.client.binDir, 'pg_restore'), args, { env: libpqEnv(server.conn, scratch), reject: false, cancelSignal: signal });
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

/** Unpacks a tarball into a temporary folder (removed by its cleanup) and compares entries, files and bytes with the manifest. */
async function drillFolder(path: string, artifact: MediaArtifact, backupDir: string, log: Logger, signal: AbortSignal | undefined): Promise<DrillCheck> {
  return timed(`unpack ${artifact.file}`, () =>
    withCleanup(log, async (cleanup) => {
      const dir = await mkdtemp(join(tmpdir(), drillDirPrefix(backupDir)));
      cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
      const args = ['--extract', `--file=${path}`, `--directory=${dir}`, COMPRESS_FLAG[artifact.compression]];
      const result = await execa('tar', args, { reject: false, cancelSignal: signal });
      if (result.isCanceled) throw new RunError(`stopped: ${describe(signal?.reason)}`);
      if (result.exitCode !== 0) throw new RunError(`tar cannot unpack it: ${firstLine(result.stderr).replace(/^tar: /, '')}`);
      const got = await measureTree(dir);
      const differences: string[] = [];
      if (got.entries !== artifact.entries) differences.push(`${got.entries} entries, the manifest says ${artifact.entries}`);
      if (artifact.files !== undefined && got.files !== artifact.files) differences.push(`${got.files} files, the manifest says ${artifact.files}`);
      if (artifact.bytes !== undefined && got.bytes !== artifact.bytes) differences.push(`${got.bytes} bytes of files, the manifest says ${artifact.bytes}`);
      if (differences.length > 0) throw new RunError(`does not match the manifest: ${differences.join('; ')}`);
      return `${got.entries} entries, ${got.files} files, ${got.bytes} bytes, as in the manifest`;
    }),
  );
}

/**
 * A restore drill: proves a run restorable without touching anything real. Checksums first; then every
 * dump is restored into a scratch database (on VERIFY_POSTGRES_HOST, or the same server) and compared
 * with the manifest, VERIFY_SQL run in it, and the scratch database dropped; every tarball is unpacked
 * into a temporary folder and measured. The report is written next to the run as verify.json.
 */
export async function drill(
  config: Config,
  log: Logger,
  ref: string,
  now: () => Date,
  options: { signal?: AbortSignal; trustUnsigned?: boolean } = {},
): Promise<{ report: DrillReport; runDir: string }> {
  const { signal, trustUnsigned = false } = options;
  return withVolumeLock(config.backupDir, log, () => withCleanup(log, async (cleanup) => {
    const journal = new RestoreJournal(config.backupDir);
    cleanup.add('close the journal', () => journal.close());
    const stored = await resolveWithOffsite(config.backupDir, await remoteTargets(config, log), ref, runTrust(config, trustUnsigned), log, cleanup);
    // A forged dump is SQL that pg_restore runs on the drill server: nothing unsigned gets that far.
    await checkRunSignature(stored.runDir, `run ${stored.manifest.runId}`, config.signing, trustUnsigned);
    const started = now();
    let selection = stored;
    const checks: DrillCheck[] = [await timed('sha256', async () => {
      await checkChecksums(stored);
      return `${stored.artifacts.length} file(s) match the manifest`;
    })];
    if (checks[0]!.ok && stored.artifacts.some((a) => a.encryption !== null)) {
      checks.push(await timed('decrypt', async () => {
        selection = await decryptSelection(stored, config.decryption, join(config.backupDir, PARTIAL_DIR), cleanup);
        return `${stored.artifacts.length} file(s) decrypt to the manifest's plaintext sha256`;
      }));
    }
    if (checks.every((c) => c.ok)) {
      const dumps = selection.artifacts.filter((a): a is PostgresArtifact => a.kind === 'postgres');
      if (dumps.length > 0) {
        const pg = config.verify.postgres;
        if (pg === undefined) throw new UsageError('the run holds database dumps: set POSTGRES_HOST and POSTGRES_USER (or VERIFY_POSTGRES_HOST) for the drill');
        const connect = `connect to ${pg.host}:${pg.port}`;
        const connecting = Date.now();
        const server = await connectServer(pg, pg.maintenanceDb).catch((error: unknown) => {
          checks.push(failed(connect, error));
          return undefined;
        });
        if (server !== undefined) {
          const detail = `PostgreSQL ${server.serverVersion}, pg_restore ${server.client.version}`;
          checks.push({ check: connect, ok: true, detail, durationMs: Date.now() - connecting });
          for (const dump of dumps) {
            const path = join(selection.runDir, dump.file);
            checks.push(...(await drillDatabase(server, pg.maintenanceDb, path, dump, config.verify.sql, log, signal, journal).catch((error: unknown) => [failed(`restore ${dump.file}`, error)])));
          }
        }
      }
      // Roles are server-wide: a drill only reads them, it never creates roles on any server.
      for (const globals of selection.artifacts.filter((a): a is GlobalsArtifact => a.kind === 'globals')) {
        checks.push(
          await timed(`read ${globals.file}`, async () => `${await checkGlobalsFile(join(selection.runDir, globals.file), globals)} (not restored: roles are server-wide)`),
        );
      }
      for (const media of selection.artifacts.filter((a): a is MediaArtifact => a.kind === 'media')) {
        checks.push(await drillFolder(join(selection.runDir, media.file), media, config.backupDir, log, signal));
      }
    }
    const finished = now();
    const report: DrillReport = {
      runId: stored.manifest.runId,
      ok: checks.every((c) => c.ok),
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      checks,
    };
    await writeFileAtomic(join(stored.runDir, VERIFY_FILE), `${JSON.stringify(report, null, 2)}\n`);
    log.info({ run: report.runId, ok: report.ok, durationMs: report.durationMs }, report.ok ? 'drill passed' : 'drill failed');
    return { report, runDir: stored.runDir };
  }), { waitMs: config.lockWaitMs, signal });
}
