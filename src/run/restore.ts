import { availableParallelism } from 'node:os';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { requirePostgres, runTrust, safetySources } from '../app.ts';
import type { Config, MediaFolder, RestoreSafety } from '../config/config.ts';
import { clockOf } from '../clock.ts';
import { folderOverlap } from '../util/paths.ts';
import { RunError, UsageError, describe, stopped } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Artifact, PostgresArtifact } from '../manifest.ts';
import { PARTIAL_DIR, PRE_RESTORE, formatRunId } from '../naming.ts';
import { checkGlobalsFile, restoreGlobals } from '../kinds/globals/dumpall.ts';
import { readToc, tablesTheDumpLacks } from '../kinds/postgres/dump.ts';
import { connectServer, type PgServer } from '../pg/server.ts';
import { databaseExists, keptName, leftDatabases, pruneKept, restoreDatabase, swapDatabase } from '../kinds/postgres/restore.ts';
import { query } from '../pg/psql.ts';
import { RestoreJournal } from '../volume/restore-journal.ts';
import { dropRestoreLeftovers } from './leftovers.ts';
import { restoreFolder } from '../kinds/media/restore.ts';
import type { Selection } from '../volume/resolve.ts';
import { resolveWithOffsite } from './download.ts';
import { remoteTargets } from '../offsite/targets.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { confirm } from '../util/confirm.ts';
import { hashFile } from '../util/hash.ts';
import { backupRun } from './backup.ts';
import { withCleanup } from '../util/cleanup.ts';
import { decryptSelection } from './decrypt.ts';

export interface RestoreOptions {
  ref: string;
  targetDb: string | undefined;
  targetDir: string | undefined;
  yes: boolean;
  /** RESTORE_SAFETY, or none with --no-safety-backup. */
  safety: RestoreSafety;
  jobs: number | undefined;
  noOwner: boolean;
  /** Use a run without a signature although BACKUP_SIGNING_KEY is set (an older run). */
  trustUnsigned: boolean;
  /** Restore although the database has tables the dump lacks (they are dropped; the safety backup keeps them). */
  allowMissingTables: boolean;
}

export interface RestoreOutcome {
  source: string;
  target: string;
  check: string;
}

export interface RestoreResult {
  runId: string;
  safetyBackup: string | undefined;
  /** RESTORE_SAFETY=keep: the replaced databases, as they are now named. */
  kept: string[];
  outcomes: RestoreOutcome[];
}

interface Plan {
  artifact: Artifact;
  path: string;
  /** Database name or folder path. */
  target: string;
}

/** Checks every selected artifact against the manifest's sha256; a mismatch refuses the whole restore. */
export async function checkChecksums(selection: Selection): Promise<void> {
  for (const artifact of selection.artifacts) {
    const path = join(selection.runDir, artifact.file);
    const actual = await hashFile(path).catch((error: unknown) => {
      throw new RunError(`cannot read ${path}: ${describe(error)}`);
    });
    if (actual.sha256 !== artifact.sha256 || actual.size !== artifact.size) {
      throw new RunError(
        `${path} is damaged: its sha256 is ${actual.sha256} (${actual.size} bytes), the manifest says ${artifact.sha256} (${artifact.size} bytes); nothing was restored`,
      );
    }
  }
}

function plan(config: Config, selection: Selection, options: RestoreOptions): Plan[] {
  const dumps = selection.artifacts.filter((a) => a.kind === 'postgres');
  const tarballs = selection.artifacts.filter((a) => a.kind === 'media');
  if (options.targetDb !== undefined && dumps.length !== 1) throw new UsageError(`--target-db needs exactly one database dump; "${options.ref}" selects ${dumps.length}`);
  if (options.targetDir !== undefined && tarballs.length !== 1) throw new UsageError(`--target-dir needs exactly one media tarball; "${options.ref}" selects ${tarballs.length}`);
  const overlap = options.targetDir === undefined ? undefined : folderOverlap(options.targetDir, config.backupDir);
  if (overlap !== undefined) {
    throw new UsageError(`--target-dir ${options.targetDir} ${overlap} BACKUP_DIR (${config.backupDir}): a restore empties its target folder first; choose a folder outside the backups volume`);
  }
  // Roles first: the databases' owners and grants refer to them.
  const ordered = [...selection.artifacts].sort((a, b) => Number(b.kind === 'globals') - Number(a.kind === 'globals'));
  return ordered.map((artifact) => {
    const path = join(selection.runDir, artifact.file);
    if (artifact.kind === 'globals') return { artifact, path, target: 'roles and tablespaces' };
    if (artifact.kind === 'postgres') return { artifact, path, target: options.targetDb ?? artifact.source };
    const folder = options.targetDir ?? config.media.find((m) => m.name === artifact.source)?.path;
    if (folder === undefined) {
      throw new UsageError(`media "${artifact.source}" is not in MEDIA_PATHS: add ${artifact.source}:/its/path there or pass --target-dir`);
    }
    return { artifact, path, target: folder };
  });
}

async function folderHasContent(path: string): Promise<boolean> {
  return (await readdir(path).catch(() => [])).length > 0;
}

/**
 * Restores a run, or one artifact of it: checksums first, then a check that the dumps are readable by
 * the server's client, a confirmation, a safety backup of what will be replaced into pre-restore/, the
 * restore itself (each target untouched until its copy is complete and checked), and a report.
 */
export async function restore(config: Config, log: Logger, options: RestoreOptions, signal?: AbortSignal): Promise<RestoreResult> {
  return withVolumeLock(config.backupDir, log, () =>
    withCleanup(log, async (cleanup) => {
      const stored = await resolveWithOffsite(config.backupDir, await remoteTargets(config, log), options.ref, runTrust(config, options.trustUnsigned), log, cleanup);
      await checkRunSignature(stored.runDir, `run ${stored.manifest.runId}`, config.signing, options.trustUnsigned);
      plan(config, stored, options); // usage errors before any work
      await checkChecksums(stored);
      log.info({ run: stored.manifest.runId, files: stored.artifacts.map((a) => a.file) }, 'checksums match the manifest');
      const selection = await decryptSelection(stored, config.decryption, join(config.backupDir, PARTIAL_DIR), cleanup);
      const plans = plan(config, selection, options);

      let server: PgServer | undefined;
      // The databases that exist now, asked once: what the tables check, the safety net and keep act on.
      const existing = new Set<string>();
      const pg = plans.some((p) => p.artifact.kind !== 'media') ? requirePostgres(config) : undefined;
      if (pg !== undefined) {
        server = await connectServer(pg, pg.maintenanceDb);
        await dropRestoreLeftovers(config.backupDir, server, pg.maintenanceDb, log);
        for (const p of plans.filter((x) => x.artifact.kind === 'postgres')) {
          if (await databaseExists(server, pg.maintenanceDb, p.target)) existing.add(p.target);
          const contents = await readToc(server.client, p.path, undefined, signal);
          // A dump made with POSTGRES_EXTRA_OPTS that leave things out would silently drop them.
          if (options.allowMissingTables || !existing.has(p.target)) continue;
          const lacking = await tablesTheDumpLacks(server.client, server.conn, p.target, contents);
          if (lacking.length > 0) {
            throw new RunError(
              `database ${p.target} has ${lacking.length} table(s) that ${p.artifact.file} lacks, which the restore would drop: ${lacking.slice(0, 10).join(', ')}${lacking.length > 10 ? ', …' : ''}; nothing was touched. Pass --allow-missing-tables to restore anyway (the safety backup keeps them), or --target-db to restore beside it`,
            );
          }
        }
        // A globals file is read and checked statement by statement before anything is touched.
        for (const p of plans) if (p.artifact.kind === 'globals') await checkGlobalsFile(p.path, p.artifact);
      }

      const targets = plans.map((p) => (p.artifact.kind === 'postgres' ? `database ${p.target}` : p.artifact.kind === 'media' ? `folder ${p.target}` : `the server's roles and tablespaces`));
      const expected = plans.length === 1 ? (plans[0]!.artifact.kind === 'postgres' ? plans[0]!.target : plans[0]!.artifact.source) : selection.manifest.runId;
      await confirm(`${targets.join(', ')} with the contents of run ${selection.manifest.runId}`, expected, options.yes);
      stopped(signal);

      const journal = new RestoreJournal(config.backupDir);
      // Registered first, so it runs last: after the scratch databases are dropped.
      cleanup.add('close the restore journal', () => journal.close());
      let safetyBackup: string | undefined;
      if (options.safety !== 'none') {
        const databases: string[] = [];
        const folders: MediaFolder[] = [];
        for (const p of plans) {
          // keep: the database itself stays, renamed; no dump of it is needed.
          if (options.safety === 'dump' && p.artifact.kind === 'postgres' && existing.has(p.target)) databases.push(p.target);
          if (p.artifact.kind === 'media' && (await folderHasContent(p.target))) folders.push({ name: p.artifact.source, path: p.target });
        }
        const globals = plans.some((p) => p.artifact.kind === 'globals');
        if (globals || databases.length + folders.length > 0) {
          const sources = safetySources(config, server, { globals, databases, folders }, log);
          const result = await backupRun({ backupDir: config.backupDir, tier: PRE_RESTORE, label: undefined, sources, server, log, encryption: config.encryption, signing: config.signing, signal, progressEveryMs: config.progressEveryMs });
          safetyBackup = result.runDir;
          log.info({ dir: safetyBackup }, 'safety backup taken');
        }
      }

      const outcomes: RestoreOutcome[] = [];
      const kept: string[] = [];
      const restoreId = formatRunId(clockOf(config)());
      const jobs = options.jobs ?? availableParallelism();
      const restoreOneDatabase = async (p: Plan, a: PostgresArtifact) => {
        const keepAs = options.safety === 'keep' && existing.has(p.target) ? keptName(p.target, restoreId) : undefined;
        const check = await restoreDatabase(server!, p.path, a, p.target, { jobs, noOwner: options.noOwner, maintenanceDb: pg!.maintenanceDb, signal, keepAs, journal }, log, cleanup);
        if (keepAs !== undefined) {
          kept.push(keepAs);
          await pruneKept(server!, pg!.maintenanceDb, p.target, config.keepPreRestore, log);
        }
        return check;
      };
      for (const p of plans) {
        try {
          stopped(signal);
          const a = p.artifact;
          const check =
            a.kind === 'globals'
              ? await restoreGlobals(server!, pg!.maintenanceDb, p.path, a)
              : a.kind === 'postgres'
                ? await restoreOneDatabase(p, a)
                : await restoreFolder(p.path, a, p.target, log, cleanup, journal, signal);
          outcomes.push({ source: p.artifact.file, target: p.target, check });
          log.info({ file: p.artifact.file, target: p.target, check }, 'restored');
        } catch (error) {
          const done = outcomes.length > 0 ? ` (already restored: ${outcomes.map((o) => o.target).join(', ')})` : '';
          const safety = `${safetyBackup === undefined ? '' : `; the safety backup is ${safetyBackup}`}${kept.length === 0 ? '' : `; kept: ${kept.join(', ')}`}`;
          throw new RunError(`${describe(error)}${done}${safety}`);
        }
      }
      return { runId: selection.manifest.runId, safetyBackup, kept, outcomes };
    }),
    { waitMs: config.lockWaitMs, signal },
  );
}

/**
 * `restore --rollback <db>`: swaps the newest copy that RESTORE_SAFETY=keep kept of `database` back in,
 * in one transaction like a restore; what it replaces is kept in turn, so a rollback can be undone too.
 */
export async function rollback(config: Config, log: Logger, database: string, yes: boolean, signal?: AbortSignal): Promise<{ from: string; keptAs: string | undefined }> {
  const pg = requirePostgres(config);
  return withVolumeLock(config.backupDir, log, () =>
    withCleanup(log, async (cleanup) => {
      const server = await connectServer(pg, pg.maintenanceDb);
      await dropRestoreLeftovers(config.backupDir, server, pg.maintenanceDb, log);
      const admin = database === pg.maintenanceDb ? 'template1' : pg.maintenanceDb;
      const copy = (await leftDatabases(server, admin)).kept.find((k) => keptName(database, k.restoreId) === k.name);
      if (copy === undefined) {
        throw new RunError(`no kept copy of database ${database} on the server: only restores with RESTORE_SAFETY=keep keep one (status lists them)`);
      }
      await confirm(`database ${database} with ${copy.name}, the copy kept by the restore of ${copy.restoreId}`, database, yes);
      stopped(signal);
      const journal = new RestoreJournal(config.backupDir);
      cleanup.add('close the restore journal', () => journal.close());
      let keptAs: string | undefined;
      if (await databaseExists(server, admin, database)) {
        keptAs = keptName(database, formatRunId(clockOf(config)()));
        await swapDatabase(server, admin, database, copy.name, log, { keepAs: keptAs, journal });
      } else {
        await query(server.client, server.conn, admin, `ALTER DATABASE :"copy" RENAME TO :"database";`, { copy: copy.name, database });
      }
      await pruneKept(server, admin, database, config.keepPreRestore, log);
      return { from: copy.name, keptAs };
    }),
    { waitMs: config.lockWaitMs, signal },
  );
}
