import type { Context } from '../context.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { isFutureDated } from '../retention/policy.ts';
import { RunError, describe } from '../errors.ts';
import { PRE_RESTORE, type Tier } from '../naming.ts';
import { tierFor } from '../retention/tiers.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { listRuns } from '../volume/runs.ts';
import { recordOutcome, type JobOutcome } from '../volume/status.ts';
import { backupRun, type BackupResult } from './backup.ts';
import { dropRestoreLeftovers } from './leftovers.ts';
import { runHook } from './hooks.ts';
import { jobStatus, notify, notifyStart } from './webhooks.ts';
import { shipPending } from './catch-up.ts';
import { pruneOffsite, pruneVolume, pruneWalBehindBases, sizeDropHolds } from './prune.ts';
import { dropNote, dropWords, type Drop } from '../retention/drops.ts';
import { HISTORY, appendHistory, type BackupEntry } from '../volume/history.ts';
import { backupSources, baseBackupSources } from './sources.ts';
import { seriesOf, type Series } from '../manifest.ts';

export interface JobResult {
  /** Undefined when the run itself failed. */
  run: BackupResult | undefined;
  outcome: JobOutcome;
  /** Why the job is not a full success: the error of a failed run, or offsite / hook problems after a good one. */
  error: Error | undefined;
}

/**
 * One backup job, as `backup` and the daemon run it: BACKUP_PRE_COMMAND, then under the volume lock a run
 * into its tier (streamed to every remote target at once), the upload of earlier runs each target misses,
 * and pruning of every place (only after a successful run); then BACKUP_POST_COMMAND, the outcome recorded
 * for healthcheck and status, and the webhooks. Never throws: the outcome says what happened.
 */
export async function backupJob(ctx: Context, forcedTier?: Tier, series: Series = 'dumps'): Promise<JobResult> {
  const { config, log, now, signal } = ctx;
  const started = now();
  const problems: string[] = [];
  let run: BackupResult | undefined;
  let failure: Error | undefined;
  let targets: OffsiteStore[] = [];
  let drops: Drop[] = [];
  await notifyStart(config.hooks, started, log);
  try {
    if (config.hooks.preCommand !== undefined) await runHook('BACKUP_PRE_COMMAND', config.hooks.preCommand, config.hooks.env, log, signal);
    targets = await ctx.targets();
    run = await withVolumeLock(config.backupDir, log, async () => {
      const notAfter = ctx.notAfter();
      // Tiers count within the series: a weekly base backup does not take the dumps' weekly place.
      const earlier = (await listRuns(config.backupDir)).filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && !isFutureDated(r.time, notAfter) && seriesOf(r.manifest) === series);
      const tier = forcedTier ?? tierFor(now(), earlier.map((r) => r.time), config.timeZone);
      // Part sizes grow with the artifact: the newest earlier run says how big each file has become.
      const expectedSizes = new Map<string, number>();
      for (const r of earlier) for (const a of r.manifest!.artifacts) if (!expectedSizes.has(a.file)) expectedSizes.set(a.file, a.size);

      const { sources, server } = series === 'basebackup' ? await baseBackupSources(ctx) : await backupSources(ctx);
      if (server !== undefined) await dropRestoreLeftovers(config.backupDir, server, config.postgres!.maintenanceDb, log);
      const result = await backupRun({ backupDir: config.backupDir, tier, label: config.label, sources, server, log, now, offsite: targets, expectedSizes, signal, parallel: config.postgres?.parallel, encryption: config.encryption, signing: config.signing, follow: ctx.follow });
      // Size drops: said now, and their good copies held by every prune below until acknowledged.
      const { drops: found, holds } = await sizeDropHolds(config.backupDir, config.signing, config.sizeDrop, ctx.notAfter());
      drops = found.filter((d) => d.runId === result.manifest.runId);
      for (const d of drops) log.warn({ run: d.runId, previous: d.previousRunId }, `${dropWords(d)}: is that expected? \`backup-sidecar ack ${d.runId}\` says so; until then run ${d.previousRunId} is kept`);
      if (result.offsiteError !== undefined) problems.push(`not offsite: ${result.offsiteError.message}; the run is kept in the volume and the next run uploads it`);
      // Each target catches up and is pruned on its own; one that failed this run waits for the next.
      for (const target of targets.filter((t) => result.manifest.targets.find((s) => s.url === t.url)?.state === 'complete')) {
        try {
          const shipped = await shipPending(config.backupDir, target, { ...ctx.retention(target.retention), holds }, log, now, config.signing);
          if (shipped.error !== undefined) problems.push(`${shipped.waiting.length} earlier run(s) still not offsite in ${target.url}: ${shipped.error.message}`);
          await pruneOffsite(target, { ...ctx.retention(target.retention), holds }, log, false, config.signing);
        } catch (error) {
          problems.push(describe(error));
        }
      }
      await pruneVolume(config.backupDir, { ...ctx.retention(), holds }, log, false, targets.length > 0, config.signing);
      if (config.wal.enabled) await pruneWalBehindBases(config.backupDir, targets, log);
      return result;
    }, { waitMs: config.lockWaitMs, signal });
  } catch (error) {
    failure = error instanceof Error ? error : new RunError(String(error));
  }
  if (config.hooks.postCommand !== undefined) {
    // Not cancelled on shutdown: it often restarts what the pre command stopped.
    const env = { ...config.hooks.env, BACKUP_STATUS: failure === undefined ? 'ok' : 'failed', BACKUP_RUN_DIR: run?.runDir ?? '' };
    await runHook('BACKUP_POST_COMMAND', config.hooks.postCommand, env, log).catch((error: unknown) => problems.push(describe(error)));
  }
  const error = failure ?? (problems.length > 0 ? new RunError(problems.join('\n')) : undefined);
  const finished = now();
  const outcome: JobOutcome = {
    ok: failure === undefined,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    runId: run?.manifest.runId ?? null,
    tier: run?.manifest.tier ?? null,
    bytes: run?.manifest.artifacts.reduce((s, a) => s + a.size, 0) ?? 0,
    offsite: run?.manifest.offsite?.state ?? (targets.length === 0 ? 'off' : 'failed'),
    error: error === undefined ? null : error.message,
  };
  await recordOutcome(config.backupDir, outcome).catch((e: unknown) => log.warn({ err: describe(e) }, 'cannot record the outcome in the volume'));
  const targetsState = (run?.manifest.targets ?? []).map((t) => ({ url: t.url, state: t.state }));
  const dropped = drops.map(dropNote);
  const entry: BackupEntry = {
    event: 'backup',
    startedAt: outcome.startedAt,
    finishedAt: outcome.finishedAt,
    status: jobStatus(outcome),
    runId: outcome.runId,
    tier: outcome.tier,
    artifacts: (run?.manifest.artifacts ?? []).map((a) => ({ source: a.source, kind: a.kind, size: a.size, durationMs: a.durationMs ?? null })),
    targets: targetsState,
    drops: dropped,
    error: outcome.error,
  };
  await appendHistory(config.backupDir, entry, config.historyMax).catch((e: unknown) => log.warn({ err: describe(e) }, `cannot add the run to ${HISTORY}; the status page misses it`));
  await notify(config.hooks, { ...outcome, durationMs: finished.getTime() - started.getTime(), dir: run?.runDir ?? null, targets: targetsState, drops: dropped }, log);
  return { run, outcome, error };
}
