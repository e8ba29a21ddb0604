import { join } from 'node:path';
import type { Context } from '../context.ts';
import { UsageError, describe } from '../errors.ts';
import type { DrillSession } from '../kinds/kind.ts';
import { inKindOrder, kindOf } from '../kinds/registry.ts';
import { PARTIAL_DIR } from '../naming.ts';
import { connectServer, type PgServer } from '../pg/server.ts';
import { withCleanup } from '../util/cleanup.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { VERIFY_FILE, failedCheck, timed, type DrillCheck, type DrillReport } from '../volume/drill-report.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { HISTORY, appendHistory } from '../volume/history.ts';
import { RestoreJournal } from '../volume/restore-journal.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { decryptSelection } from './decrypt.ts';
import { resolveWithOffsite } from './download.ts';
import { checkChecksums } from './restore.ts';
import { requireVolume } from '../volume/resolve.ts';

/**
 * A restore drill: proves a run restorable without touching anything real. Checksums first; then each
 * artifact's kind proves it (a dump restored into a scratch database on VERIFY_POSTGRES_HOST, or the same
 * server, compared with the manifest, VERIFY_SQL run in it, and dropped; a tarball unpacked into a
 * temporary folder and measured). The report is written next to the run as verify.json.
 */
export async function drill(ctx: Context, ref: string, trustUnsigned = false): Promise<{ report: DrillReport; runDir: string }> {
  const { config, log, signal } = ctx;
  await requireVolume(config.backupDir, ctx.hasRemoteTargets);
  return withVolumeLock(config.backupDir, log, () => withCleanup(log, async (cleanup) => {
    const journal = new RestoreJournal(config.backupDir);
    cleanup.add('close the journal', () => journal.close());
    const stored = await resolveWithOffsite(config.backupDir, await ctx.targets(), ref, ctx.trust(trustUnsigned), log, cleanup, ctx.follow);
    // A forged dump is SQL that pg_restore runs on the drill server: nothing unsigned gets that far.
    await checkRunSignature(stored.runDir, `run ${stored.manifest.runId}`, config.signing, trustUnsigned);
    const started = ctx.now();
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
      let server: Promise<PgServer | undefined> | undefined;
      const session: DrillSession = {
        ctx,
        journal,
        // Connected once, on the first dump; the connection is a check of its own.
        server: () => (server ??= connectDrillServer(ctx, checks)),
      };
      const artifacts = inKindOrder(selection.artifacts);
      const work = { dir: join(config.backupDir, PARTIAL_DIR), cleanup, signal };
      for (const artifact of artifacts) {
        const kind = kindOf(artifact);
        const path = await kind.plainFile(join(selection.runDir, artifact.file), artifact, work).catch((error: unknown) => error as Error);
        checks.push(...(path instanceof Error ? [failedCheck(`decompress ${artifact.file}`, path)] : await kind.drill(path, artifact, session)));
      }
    }
    const finished = ctx.now();
    const report: DrillReport = {
      runId: stored.manifest.runId,
      ok: checks.every((c) => c.ok),
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      checks,
    };
    await writeFileAtomic(join(stored.runDir, VERIFY_FILE), `${JSON.stringify(report, null, 2)}\n`);
    await appendHistory(config.backupDir, { event: 'drill', ...report }, config.historyMax).catch(
      (error: unknown) => log.warn({ err: describe(error) }, `cannot add the drill to ${HISTORY}; the status page misses it`),
    );
    log.info({ run: report.runId, ok: report.ok, durationMs: report.durationMs }, report.ok ? 'drill passed' : 'drill failed');
    return { report, runDir: stored.runDir };
  }), { waitMs: config.lockWaitMs, signal });
}

/** The drill server (VERIFY_POSTGRES_HOST, or the backed-up one); its connection is recorded as a check. */
async function connectDrillServer(ctx: Context, checks: DrillCheck[]): Promise<PgServer | undefined> {
  const pg = ctx.config.verify.postgres;
  if (pg === undefined) throw new UsageError('the run holds database dumps: set POSTGRES_HOST and POSTGRES_USER (or VERIFY_POSTGRES_HOST) for the drill');
  const connect = `connect to ${pg.host}:${pg.port}`;
  const connecting = Date.now();
  try {
    const server = await connectServer(pg, pg.maintenanceDb);
    checks.push({ check: connect, ok: true, detail: `PostgreSQL ${server.serverVersion}, pg_restore ${server.client.version}`, durationMs: Date.now() - connecting });
    return server;
  } catch (error) {
    checks.push(failedCheck(connect, error));
    return undefined;
  }
}
