import { Cron } from 'croner';
import ms from 'ms';
import type { Context } from '../context.ts';
import { seriesOf, type BaseBackupArtifact } from '../manifest.ts';
import { PRE_RESTORE } from '../naming.ts';
import { isFutureDated } from '../retention/policy.ts';
import { drillSummary, type DrillReport } from '../volume/drill-report.ts';
import { readHistory } from '../volume/history.ts';
import { walSummary, type WalSummary } from '../wal/archive.ts';
import { parseLsn, segmentName } from '../wal/lsn.ts';
import { lagWords, readReceiverState, type ReceiverState } from '../wal/state.ts';
import { listRuns, type StoredRun } from '../volume/runs.ts';
import { readDaemonStart, readStatus, type StatusFile } from '../volume/status.ts';

export interface Health {
  healthy: boolean;
  /** One line: why, or what is fine. */
  reason: string;
  maxAgeMs: number;
  newest: StoredRun | undefined;
  runs: StoredRun[];
  status: StatusFile | undefined;
  /** The most recent restore drill, of a run in the volume or (.history.jsonl) one pruned since. */
  lastDrill: DrillReport | undefined;
  /** Runs dated after now plus CLOCK_SKEW_MAX: forged, or left by a clock that jumped. */
  suspicious: StoredRun[];
  /** With WAL_ARCHIVE: the WAL kept, and its gaps. */
  wal: WalSummary | undefined;
  /** With WAL_ARCHIVE: whether the daemon's streaming runs (as it last recorded). */
  walStreaming: ReceiverState | undefined;
}

/** One line naming runs dated in the future, for status and list. */
export function suspiciousLine(runs: StoredRun[]): string {
  return `SUSPICIOUS: ${runs.length} run(s) dated in the future, kept but never counted as the newest (check the clock, and who can write the volume): ${runs.map((r) => `${r.tier}/${r.id}`).join(', ')}`;
}

/** Two intervals of the schedule plus one hour: one missed run is tolerated, two are not. */
export function defaultMaxAge(schedule: string, timeZone: string, from = new Date()): number {
  const interval = scheduleOf(schedule, timeZone, from).intervalMs;
  return interval === 0 ? 26 * 3_600_000 : 2 * interval + 3_600_000;
}

/** A cron schedule seen from `from`: its next run, and its interval (see scheduleInterval). */
export function scheduleOf(schedule: string, timeZone: string, from: Date): { next: Date | undefined; intervalMs: number } {
  const job = new Cron(schedule, { timezone: timeZone, paused: true });
  const runs = job.nextRuns(3, from);
  job.stop();
  return { next: runs[0], intervalMs: scheduleInterval(runs) };
}

/** The longest gap between the next three runs of a schedule, ms; 0 when it runs less than twice more. */
export function scheduleInterval([a, b, c]: Date[]): number {
  if (a === undefined || b === undefined) return 0;
  return Math.max(b.getTime() - a.getTime(), c === undefined ? 0 : c.getTime() - b.getTime());
}

/** The newest base backup in the volume (WAL_ARCHIVE), if any. */
function newestBaseBackup(runs: readonly StoredRun[]): BaseBackupArtifact | undefined {
  return runs.flatMap((r) => (r.tier === PRE_RESTORE ? [] : (r.manifest?.artifacts ?? []))).find((a): a is BaseBackupArtifact => a.kind === 'basebackup');
}

/** The cluster's WAL segment size, as its newest base backup recorded it; PostgreSQL's default before any. */
export function walSegmentSize(runs: readonly StoredRun[]): number {
  return newestBaseBackup(runs)?.walSegmentSize ?? 16 * 1024 * 1024;
}

/**
 * Healthy when the newest successful run is younger than HEALTHCHECK_MAX_AGE and the last backup job did
 * not fail; before the first run, while the daemon has been up for less than HEALTHCHECK_MAX_AGE. With
 * HEALTHCHECK_REQUIRE_OFFSITE (default with S3), also only while that run is offsite; with
 * HEALTHCHECK_REQUIRE_VERIFY, also only while the last restore drill passed. Reads the volume only: it works beside the daemon, from `docker exec` or a HEALTHCHECK.
 */
export async function healthOf(ctx: Context): Promise<Health> {
  const { config } = ctx;
  const now = ctx.now();
  const runs = await listRuns(config.backupDir, config.signing);
  const status = await readStatus(config.backupDir);
  const maxAgeMs = config.daemon.healthMaxAgeMs ?? defaultMaxAge(config.daemon.schedule, config.timeZone, now);
  const notAfter = ctx.notAfter();
  // A run dated in the future is never fresh: it is listed as suspicious instead.
  const suspicious = runs.filter((r) => isFutureDated(r.time, notAfter));
  // Nor is a run whose signature is wrong (runs made before a key was set are unsigned, and still count).
  // The newest run of dumps: base backups (WAL_ARCHIVE) are a series of their own, on their own schedule.
  const newest = runs.find((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && !isFutureDated(r.time, notAfter) && r.signature !== 'invalid' && seriesOf(r.manifest) === 'dumps');
  // The history remembers drills of runs retention has removed since.
  const logged = (await readHistory(config.backupDir)).filter((e) => e.event === 'drill');
  const lastDrill = [...runs.map((r) => r.drill), ...logged]
    .filter((d): d is DrillReport => d !== undefined)
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
  const newestBase = newestBaseBackup(runs);
  const segmentSize = walSegmentSize(runs);
  const wal = config.wal.enabled ? await walSummary(config.backupDir, segmentSize) : undefined;
  const receiver = config.wal.enabled ? await readReceiverState(config.backupDir) : undefined;
  const base = { maxAgeMs, newest, runs, status, lastDrill, suspicious, wal, walStreaming: receiver };
  // A gap after the newest base backup's start breaks recovery to now; an older one only to times before it (status still shows it).
  const startName = newestBase === undefined ? '' : segmentName(newestBase.timeline, parseLsn(newestBase.startLsn)!, segmentSize);
  const blocking = (wal?.gaps ?? []).filter((g) => g.slice(8) >= startName.slice(8));
  const down = receiver === undefined || receiver.streaming ? 0 : now.getTime() - Date.parse(receiver.since);
  if (down > config.wal.maxLagMs) {
    return { ...base, healthy: false, reason: `WAL streaming has been down for ${ms(down, { long: true })} (more than WAL_MAX_LAG ${ms(config.wal.maxLagMs, { long: true })}): ${receiver!.error ?? 'unknown'}` };
  }
  const lag = receiver?.streaming === true ? receiver.lag : undefined;
  if (lag !== undefined && lag.seconds * 1000 > config.wal.maxLagMs) {
    return { ...base, healthy: false, reason: `WAL streaming is ${lagWords(lag)}, more than WAL_MAX_LAG ${ms(config.wal.maxLagMs, { long: true })}: is pg_receivewal stuck, or the network or the volume too slow?` };
  }
  if (blocking.length > 0) {
    return { ...base, healthy: false, reason: `the WAL archive has a gap: ${blocking.join(', ')} missing; point-in-time recovery cannot cross it; a new base backup (backup-sidecar basebackup) starts a complete stretch` };
  }
  if (status !== undefined && !status.last.ok) {
    return { ...base, healthy: false, reason: `the last backup failed at ${status.last.finishedAt}: ${(status.last.error ?? 'unknown error').split('\n')[0]}` };
  }
  if (newest === undefined) {
    const started = await readDaemonStart(config.backupDir);
    const up = started === undefined ? undefined : now.getTime() - started.getTime();
    if (up !== undefined && up >= 0 && up <= maxAgeMs) {
      return { ...base, healthy: true, reason: `ok: no backup yet; the daemon started ${ms(up, { long: true })} ago and its first run is not overdue` };
    }
    return { ...base, healthy: false, reason: `no successful backup in ${config.backupDir} yet` };
  }
  const age = now.getTime() - newest.time.getTime();
  if (age > maxAgeMs) {
    return { ...base, healthy: false, reason: `the newest successful backup, ${newest.id}, is ${ms(age, { long: true })} old (more than ${ms(maxAgeMs, { long: true })})` };
  }
  const offsite = newest.manifest!.offsite;
  if (config.daemon.requireOffsite && offsite !== null && offsite.state !== 'complete') {
    const why = offsite.error === null ? offsite.state : `${offsite.state}: ${offsite.error.split('\n')[0]}`;
    return { ...base, healthy: false, reason: `the newest successful backup, ${newest.id}, is not in ${offsite.url} (${why}); the next run uploads it` };
  }
  if (config.daemon.requireVerify && lastDrill !== undefined && !lastDrill.ok) {
    return { ...base, healthy: false, reason: `the last restore drill ${drillSummary(lastDrill)}` };
  }
  return { ...base, healthy: true, reason: `ok: the newest successful backup, ${newest.id}, is ${ms(Math.max(0, age), { long: true })} old` };
}
