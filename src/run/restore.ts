import { join } from 'node:path';
import type { Context } from '../context.ts';
import { RunError, UsageError, describe, stopped } from '../errors.ts';
import type { RestoreOptions, RestorePlan, RestoreSession } from '../kinds/kind.ts';
import { databaseExists, keptName, leftDatabases, pruneKept, swapDatabase } from '../kinds/postgres/restore.ts';
import { inKindOrder, kindOf } from '../kinds/registry.ts';
import type { BackupSource } from '../kinds/source.ts';
import { PARTIAL_DIR, PRE_RESTORE, formatRunId } from '../naming.ts';
import { query } from '../pg/psql.ts';
import { connectServer } from '../pg/server.ts';
import { withCleanup } from '../util/cleanup.ts';
import { confirm } from '../util/confirm.ts';
import { hashFile } from '../util/hash.ts';
import { folderOverlap } from '../util/paths.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { requireVolume, type Selection } from '../volume/resolve.ts';
import { RestoreJournal } from '../volume/restore-journal.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { backupRun } from './backup.ts';
import { decryptSelection } from './decrypt.ts';
import { resolveWithOffsite } from './download.ts';
import { dropRestoreLeftovers } from './leftovers.ts';

export type { RestoreOptions };

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

/** Checks every selected artifact against the manifest's sha256; a mismatch refuses the whole restore. */
export async function checkChecksums(selection: Selection): Promise<void> {
  for (const artifact of selection.artifacts) {
    const path = join(selection.runDir, artifact.file);
    const actual = await hashFile(path).catch((error: unknown) => {
      throw new RunError(`cannot read ${path}: ${describe(error)}`);
    });
    if (actual.sha256 !== artifact.sha256 || actual.size !== artifact.size) {
      throw new RunError(
        `${path} is damaged: its sha256 is ${actual.sha256} (${actual.size} bytes), the manifest says ${artifact.sha256} (${artifact.size} bytes); nothing was restored: restore an earlier run instead (\`backup-sidecar list\` shows them)`,
      );
    }
  }
}

/** Where each artifact goes, in the registry's order (roles first); usage errors before any work. */
function plan(ctx: Context, selection: Selection, options: RestoreOptions): RestorePlan[] {
  for (const kind of ctx.kinds) {
    if (kind.retarget === undefined || kind.retarget.value(options) === undefined) continue;
    const count = selection.artifacts.filter((a) => kindOf(a) === kind).length;
    if (count !== 1) throw new UsageError(`${kind.retarget.flag} needs exactly one ${kind.noun}; "${options.ref}" selects ${count}`);
  }
  const overlap = options.targetDir === undefined ? undefined : folderOverlap(options.targetDir, ctx.config.backupDir);
  if (overlap !== undefined) {
    throw new UsageError(`--target-dir ${options.targetDir} ${overlap} BACKUP_DIR (${ctx.config.backupDir}): a restore empties its target folder first; choose a folder outside the backups volume`);
  }
  return inKindOrder(selection.artifacts).map((artifact) => ({ artifact, path: join(selection.runDir, artifact.file), target: kindOf(artifact).restoreTarget(artifact, ctx, options) }));
}

/**
 * Restores a run, or one artifact of it: checksums first, then a check that the dumps are readable by
 * the server's client, a confirmation, a safety backup of what will be replaced into pre-restore/, the
 * restore itself (each target untouched until its copy is complete and checked), and a report.
 */
export async function restore(ctx: Context, options: RestoreOptions): Promise<RestoreResult> {
  const { config, log, signal } = ctx;
  await requireVolume(config.backupDir, ctx.hasRemoteTargets);
  return withVolumeLock(config.backupDir, log, () =>
    withCleanup(log, async (cleanup) => {
      const stored = await resolveWithOffsite(config.backupDir, await ctx.targets(), options.ref, ctx.trust(options.trustUnsigned), log, cleanup, ctx.follow);
      await checkRunSignature(stored.runDir, `run ${stored.manifest.runId}`, config.signing, options.trustUnsigned);
      plan(ctx, stored, options); // usage errors before any work
      await checkChecksums(stored);
      log.info({ run: stored.manifest.runId, files: stored.artifacts.map((a) => a.file) }, 'checksums match the manifest');
      const selection = await decryptSelection(stored, config.decryption, join(config.backupDir, PARTIAL_DIR), cleanup);
      const plans = plan(ctx, selection, options);
      const work = { dir: join(config.backupDir, PARTIAL_DIR), cleanup, signal };
      for (const p of plans) p.path = await kindOf(p.artifact).plainFile(p.path, p.artifact, work);
      log.debug({ files: plans.map((p) => p.path) }, 'files ready for the tools');

      const journal = new RestoreJournal(config.backupDir);
      // Registered first, so it runs last: after the scratch databases are dropped.
      cleanup.add('close the restore journal', () => journal.close());
      const session: RestoreSession = { ctx, options, cleanup, server: undefined, existing: new Set(), journal, restoreId: formatRunId(ctx.now()), kept: [] };
      if (plans.some((p) => kindOf(p.artifact).needsServer)) {
        const pg = ctx.postgres();
        session.server = await connectServer(pg, pg.maintenanceDb);
        await dropRestoreLeftovers(config.backupDir, session.server, pg.maintenanceDb, log);
      }
      for (const p of plans) await kindOf(p.artifact).prepare(p, session);
      log.debug('checked what the restore replaces');

      const targets = plans.map((p) => kindOf(p.artifact).describeTarget(p));
      const expected = plans.length === 1 ? kindOf(plans[0]!.artifact).confirmWord(plans[0]!) : selection.manifest.runId;
      await confirm(`${targets.join(', ')} with the contents of run ${selection.manifest.runId}`, expected, options.yes);
      stopped(signal);

      let safetyBackup: string | undefined;
      if (options.safety !== 'none') {
        const sources: BackupSource[] = [];
        for (const p of plans) {
          const source = await kindOf(p.artifact).safetySource(p, session);
          if (source !== undefined) sources.push(source);
        }
        if (sources.length > 0) {
          const result = await backupRun({ backupDir: config.backupDir, tier: PRE_RESTORE, label: undefined, sources, server: session.server, log, encryption: config.encryption, signing: config.signing, signal, follow: ctx.follow });
          safetyBackup = result.runDir;
          log.info({ dir: safetyBackup }, 'safety backup taken');
        }
      }

      const outcomes: RestoreOutcome[] = [];
      for (const p of plans) {
        try {
          stopped(signal);
          const check = await kindOf(p.artifact).restore(p, session);
          outcomes.push({ source: p.artifact.file, target: p.target, check });
          log.info({ file: p.artifact.file, target: p.target, check }, 'restored');
        } catch (error) {
          const done = outcomes.length > 0 ? ` (already restored: ${outcomes.map((o) => o.target).join(', ')})` : '';
          const kept = session.kept;
          const safety = `${safetyBackup === undefined ? '' : `; the safety backup is ${safetyBackup}`}${kept.length === 0 ? '' : `; kept: ${kept.join(', ')}`}`;
          throw new RunError(`${describe(error)}${done}${safety}`);
        }
      }
      return { runId: selection.manifest.runId, safetyBackup, kept: session.kept, outcomes };
    }),
    { waitMs: config.lockWaitMs, signal },
  );
}

/**
 * `restore --rollback <db>`: swaps the newest copy that RESTORE_SAFETY=keep kept of `database` back in,
 * in one transaction like a restore; what it replaces is kept in turn, so a rollback can be undone too.
 */
export async function rollback(ctx: Context, database: string, yes: boolean): Promise<{ from: string; keptAs: string | undefined }> {
  const { config, log, signal } = ctx;
  const pg = ctx.postgres();
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
        keptAs = keptName(database, formatRunId(ctx.now()));
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
