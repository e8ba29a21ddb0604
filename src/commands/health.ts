import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import type { Config } from '../config/config.ts';
import type { Context } from '../context.ts';
import { describe } from '../errors.ts';
import { healthOf, scheduleOf, suspiciousLine } from '../health/health.ts';
import { leftDatabases } from '../kinds/postgres/restore.ts';
import { targetStates } from '../manifest.ts';
import { connectServer } from '../pg/server.ts';
import { RUN_TIERS } from '../naming.ts';
import { drillSummary } from '../volume/drill-report.ts';
import { runSize, volumeDrops } from '../volume/runs.ts';
import { dropWords, openDrops } from '../retention/drops.ts';
import { freeSpace } from '../util/fs.ts';
import { askSlot } from '../wal/slot.ts';
import { walNotOffsite } from '../wal/ship.ts';
import { lagWords } from '../wal/state.ts';
import { table } from './list.ts';

/** `healthcheck`: exit 0 when healthy, 1 otherwise; the reason on one line either way. */
export async function healthcheckCommand(ctx: Context): Promise<number> {
  const health = await healthOf(ctx);
  (health.healthy ? process.stdout : process.stderr).write(`${health.healthy ? '' : 'unhealthy: '}${health.reason}\n`);
  return health.healthy ? 0 : 1;
}

/** `status`: a report for people: health, runs per tier, sizes, free space, offsite state, last error. */
export async function statusCommand(ctx: Context): Promise<number> {
  const { config } = ctx;
  const now = ctx.now();
  const health = await healthOf(ctx);
  const out: string[] = [`health: ${health.healthy ? health.reason : `FAILING: ${health.reason}`} (max age ${ms(health.maxAgeMs, { long: true })})`];
  const rows = [['TIER', 'RUNS', 'NEWEST', 'AGE', 'SIZE']];
  for (const tier of RUN_TIERS) {
    const runs = health.runs.filter((r) => r.tier === tier && r.manifest !== undefined);
    if (runs.length === 0) continue;
    const newest = runs[0]!;
    rows.push([tier, String(runs.length), newest.id, ms(Math.max(0, now.getTime() - newest.time.getTime())), prettyBytes(runs.reduce((s, r) => s + runSize(r), 0))]);
  }
  out.push(rows.length > 1 ? table(rows) : 'no runs yet');
  if (health.suspicious.length > 0) out.push(suspiciousLine(health.suspicious));
  for (const d of openDrops(volumeDrops(health.runs, config.sizeDrop, ctx.notAfter()))) {
    out.push(`SIZE DROP in run ${d.runId}: ${dropWords(d)}; run ${d.previousRunId} is kept until \`backup-sidecar ack ${d.runId}\``);
  }
  const damaged = health.runs.filter((r) => r.manifest === undefined);
  if (damaged.length > 0) out.push(`damaged runs (no valid manifest): ${damaged.map((r) => `${r.tier}/${r.id}`).join(', ')}`);
  const total = health.runs.reduce((s, r) => s + runSize(r), 0);
  out.push(`total: ${health.runs.length} runs, ${prettyBytes(total)} in ${config.backupDir}`);
  const free = await freeSpace(config.backupDir);
  if (free !== undefined) {
    const low = free < config.diskFreeMin;
    out.push(`free space: ${prettyBytes(free)}${low ? `: WARNING, below DISK_FREE_MIN (${prettyBytes(config.diskFreeMin)})` : ''}`);
  }
  if (ctx.hasRemoteTargets) {
    const missing = new Map<string, string[]>();
    for (const r of health.runs.filter((x) => x.manifest !== undefined && x.tier !== 'pre-restore')) {
      for (const t of targetStates(r.manifest!).filter((x) => x.state !== 'complete')) missing.set(t.url, [...(missing.get(t.url) ?? []), r.id]);
      if (r.manifest!.offsite === null) missing.set('the remote targets', [...(missing.get('the remote targets') ?? []), r.id]);
    }
    if (missing.size === 0) out.push('offsite: every run is in every remote target');
    for (const [url, ids] of missing) out.push(`not in ${url} yet: ${ids.length} run(s): ${ids.join(', ')}`);
  }
  const wal = health.wal;
  if (wal !== undefined) {
    const at = wal.newestAt === undefined ? '' : `, written ${ms(Math.max(0, now.getTime() - wal.newestAt.getTime()))} ago`;
    out.push(wal.newest === undefined ? 'WAL archive: nothing yet (the daemon streams it with WAL_ARCHIVE=true)' : `WAL archive: ${wal.segments} segment(s), newest ${wal.newest}${at}`);
    if (wal.gaps.length > 0) out.push(`WAL GAP: ${wal.gaps.join(', ')} missing: point-in-time recovery cannot cross it`);
    const streaming = health.walStreaming;
    if (streaming !== undefined) out.push(streaming.streaming ? `WAL streaming: yes, since ${streaming.since}${streaming.lag === undefined ? '' : `; ${lagWords(streaming.lag)}`}` : `WAL streaming: DOWN since ${streaming.since}: ${streaming.error ?? 'unknown'}`);
    if (ctx.hasRemoteTargets) {
      for (const [url, n] of await walNotOffsite(config.backupDir, (await ctx.targets()).map((t) => t.url))) out.push(n === 0 ? `WAL offsite: all of it in ${url}` : `WAL offsite: ${n} file(s) not yet in ${url} (the daemon ships them every 10 s)`);
    }
    out.push(await slotLine(ctx));
  }
  if (config.postgres !== undefined) out.push(...(await restoreLeftoverLines(config.postgres)));
  const last = health.status?.last;
  if (last !== undefined) out.push(`last backup: ${last.ok ? 'ok' : 'FAILED'} at ${last.finishedAt}${last.error === null ? '' : `: ${last.error.split('\n')[0]}`}`);
  const failure = health.status?.lastFailure;
  if (failure != null && failure !== last) out.push(`last failure: ${failure.finishedAt}: ${(failure.error ?? '').split('\n')[0]}`);
  out.push(health.lastDrill === undefined ? 'last restore drill: none yet (verify --restore, VERIFY_SCHEDULE)' : `last restore drill: ${drillSummary(health.lastDrill)}`);
  const next = (schedule: string) => `${schedule} (${config.timeZone}), next at ${scheduleOf(schedule, config.timeZone, now).next?.toISOString() ?? 'never'}`;
  out.push(`schedule: ${next(config.daemon.schedule)}`);
  if (config.daemon.verifySchedule !== undefined) out.push(`drill schedule: ${next(config.daemon.verifySchedule)}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

/** Databases that restores left on the server: kept copies (RESTORE_SAFETY=keep) and scratch copies. */
async function restoreLeftoverLines(pg: NonNullable<Config['postgres']>): Promise<string[]> {
  try {
    const left = await leftDatabases(await connectServer(pg, pg.maintenanceDb), pg.maintenanceDb);
    const lines: string[] = [];
    if (left.kept.length > 0) lines.push(`kept by RESTORE_SAFETY=keep (restore --rollback <db> swaps one back): ${left.kept.map((k) => `${k.name} (of ${k.of})`).join(', ')}`);
    if (left.scratch.length > 0) {
      lines.push(`scratch databases of interrupted or running restores and drills: ${left.scratch.map((d) => `${d.name} (${ms(Math.max(0, d.ageMs))} old, ${d.sessions} session(s))`).join(', ')}; the next restore or backup drops those no one uses`);
    }
    return lines;
  } catch (error) {
    return [`databases left by restores: cannot ask the server: ${describe(error)}`];
  }
}

/** The replication slot in one line, as the server sees it. */
async function slotLine(ctx: Context): Promise<string> {
  const slot = ctx.config.wal.slot;
  try {
    const state = await askSlot(ctx);
    if (state === undefined) return `WAL slot ${slot}: none on the server yet (the daemon creates it)`;
    return `WAL slot ${slot}: ${state.active ? 'streaming' : 'NOT STREAMING'}, the server keeps ${prettyBytes(state.retainedBytes)} for it${state.walStatus === 'lost' ? ': LOST, WAL the sidecar had not received is gone' : ''}`;
  } catch (error) {
    return `WAL slot ${slot}: cannot ask the server: ${describe(error)}`;
  }
}
