import { seriesOf, targetStates, type Manifest } from '../manifest.ts';
import { PRE_RESTORE } from '../naming.ts';
import { VERSION } from '../version.ts';
import type { Context } from '../context.ts';
import { openDrops, type Drop } from '../retention/drops.ts';
import { freeSpace } from '../util/fs.ts';
import { volumeDrops } from '../volume/runs.ts';
import { healthOf, scheduleOf, type Health } from './health.ts';
import { askSlot, type SlotState } from '../wal/slot.ts';
import { walNotOffsite } from '../wal/ship.ts';

/** Counters the daemon keeps since it started. */
export interface DaemonCounters {
  runs: number;
  failures: number;
  /** Jobs by outcome: ok, partial (the run is good, offsite or a hook is not), failed. */
  outcomes: { ok: number; partial: number; failed: number };
  skipped: number;
  drills: number;
  drillFailures: number;
}

/** A Prometheus label value: backslash, quote and newline escaped. */
function labelValue(text: string): string {
  return text.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function line(name: string, help: string, type: 'gauge' | 'counter', samples: [string, number][]): string {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples.map(([labels, v]) => `${name}${labels} ${v}`)].join('\n');
}

/** What the metrics say beyond the health: the schedule, the open size drops, the volume's free space. */
export interface MetricsExtra {
  schedule: { intervalSeconds: number; next: Date | undefined };
  drops: readonly Drop[];
  freeBytes: number | undefined;
  diskFreeMin: number;
  /** WAL_ARCHIVE: the replication slot as the server sees it (undefined: off, or the server did not answer). */
  slot?: SlotState | undefined;
  /** WAL_ARCHIVE: archived WAL files not yet in each remote target. */
  walNotOffsite?: ReadonlyMap<string, number>;
}

/** The metrics of the volume now: health, schedule, open size drops and free space read for this scrape. */
export async function metricsOf(ctx: Context, counters: DaemonCounters): Promise<string> {
  const { config } = ctx;
  const health = await healthOf(ctx);
  const schedule = scheduleOf(config.daemon.schedule, config.timeZone, ctx.now());
  return metricsText(health, counters, {
    schedule: { intervalSeconds: schedule.intervalMs / 1000, next: schedule.next },
    drops: openDrops(volumeDrops(health.runs, config.sizeDrop, ctx.notAfter())),
    freeBytes: await freeSpace(config.backupDir),
    diskFreeMin: config.diskFreeMin,
    slot: config.wal.enabled ? await askSlot(ctx).catch(() => undefined) : undefined,
    walNotOffsite: config.wal.enabled && ctx.hasRemoteTargets ? await walNotOffsite(config.backupDir, (await ctx.targets()).map((t) => t.url)) : undefined,
  });
}

/** Prometheus text exposition of the health and the volume. Computed per scrape from the volume itself. */
export function metricsText(health: Health, counters: DaemonCounters, { schedule, drops, freeBytes, diskFreeMin, slot, walNotOffsite: walBehind }: MetricsExtra): string {
  const last = health.status?.last;
  const drill = health.lastDrill;
  const tiers = new Map<string, number>();
  for (const r of health.runs) if (r.manifest !== undefined) tiers.set(r.tier, (tiers.get(r.tier) ?? 0) + 1);
  const notOffsite = health.runs.filter((r) => r.manifest?.offsite != null && r.manifest.offsite.state !== 'complete').length;
  const perTarget = new Map<string, number>();
  for (const r of health.runs) {
    if (r.manifest === undefined || r.tier === PRE_RESTORE) continue;
    for (const t of targetStates(r.manifest)) perTarget.set(t.url, (perTarget.get(t.url) ?? 0) + (t.state === 'complete' ? 0 : 1));
  }
  const seconds = (iso: string | undefined) => (iso === undefined ? 0 : Date.parse(iso) / 1000);
  // The newest complete run of the tiers (not a safety backup): what the per-source and per-target metrics describe.
  const newest = health.runs.find((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && seriesOf(r.manifest) === 'dumps')?.manifest;
  // Each source's newest artifact: the dumps' newest run, and the newest base backup (WAL_ARCHIVE) beside it.
  const artifacts = [...(newest?.artifacts ?? []), ...(health.runs.find((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && seriesOf(r.manifest) === 'basebackup')?.manifest?.artifacts ?? [])];
  const source = (a: { source: string; kind: string }) => `{source="${labelValue(a.source)}",kind="${a.kind}"}`;
  return `${[
    line('backup_sidecar_build_info', 'The version of backup-sidecar and of Node.js serving these metrics.', 'gauge', [[`{version="${labelValue(VERSION)}",node="${process.versions.node}"}`, 1]]),
    line('backup_sidecar_healthy', '1 when healthcheck passes.', 'gauge', [['', health.healthy ? 1 : 0]]),
    line('backup_sidecar_artifact_bytes', 'Size of each artifact of the newest run, per source.', 'gauge', artifacts.map((a) => [source(a), a.size])),
    line('backup_sidecar_artifact_duration_seconds', 'How long each artifact of the newest run took to produce and write.', 'gauge', artifacts.filter((a) => a.durationMs !== undefined).map((a) => [source(a), a.durationMs! / 1000])),
    line('backup_sidecar_target_newest_run_complete', '1 when the newest run is complete in the remote target.', 'gauge', (newest === undefined ? [] : targetStates(newest)).map((t) => [`{target="${labelValue(t.url)}"}`, t.state === 'complete' ? 1 : 0])),
    line('backup_sidecar_size_drop', '1 while a size drop of this source is not acknowledged (SIZE_DROP_WARN; backup-sidecar ack <run-id>).', 'gauge', sourcesOf(newest, drops).map((a) => [source(a), drops.some((d) => d.source === a.source && d.kind === a.kind) ? 1 : 0])),
    line('backup_sidecar_volume_free_bytes', 'Free space in the volume.', 'gauge', freeBytes === undefined ? [] : [['', freeBytes]]),
    line('backup_sidecar_volume_free_min_bytes', 'DISK_FREE_MIN: status and the page warn below it.', 'gauge', [['', diskFreeMin]]),
    line('backup_sidecar_schedule_interval_seconds', 'Time between two scheduled backups (the longest gap of the next three).', 'gauge', [['', schedule.intervalSeconds]]),
    line('backup_sidecar_next_run_timestamp_seconds', 'When the next scheduled backup starts.', 'gauge', [['', schedule.next === undefined ? 0 : schedule.next.getTime() / 1000]]),
    line('backup_sidecar_backups_total', 'Backup jobs of this daemon by outcome: ok, partial (offsite or a hook failed), failed.', 'counter', Object.entries(counters.outcomes).map(([o, n]) => [`{outcome="${o}"}`, n])),
    line('backup_sidecar_last_success_timestamp_seconds', 'Start time of the newest successful run.', 'gauge', [['', health.newest === undefined ? 0 : health.newest.time.getTime() / 1000]]),
    line('backup_sidecar_last_run_success', '1 when the last backup job succeeded.', 'gauge', [['', last?.ok === true ? 1 : 0]]),
    line('backup_sidecar_last_run_timestamp_seconds', 'When the last backup job finished (0: none yet).', 'gauge', [['', seconds(last?.finishedAt)]]),
    line('backup_sidecar_last_run_duration_seconds', 'Duration of the last backup job.', 'gauge', [['', last === undefined ? 0 : seconds(last.finishedAt) - seconds(last.startedAt)]]),
    line('backup_sidecar_last_run_bytes', 'Bytes written by the last backup job.', 'gauge', [['', last?.bytes ?? 0]]),
    line('backup_sidecar_runs', 'Complete runs in the volume, per tier.', 'gauge', [...tiers].map(([t, n]) => [`{tier="${t}"}`, n])),
    line('backup_sidecar_volume_bytes', 'Bytes of all complete runs in the volume.', 'gauge', [['', health.runs.reduce((s, r) => s + (r.manifest?.artifacts.reduce((a, x) => a + x.size, 0) ?? 0), 0)]]),
    line('backup_sidecar_runs_not_offsite', 'Runs in the volume not (yet) in the offsite store.', 'gauge', [['', notOffsite]]),
    line('backup_sidecar_target_runs_missing', 'Runs in the volume not (yet) complete in each remote target.', 'gauge', [...perTarget].map(([url, n]) => [`{target="${labelValue(url)}"}`, n])),
    line('backup_sidecar_jobs_total', 'Backup jobs run by this daemon.', 'counter', [['', counters.runs]]),
    line('backup_sidecar_job_failures_total', 'Backup jobs that failed, in this daemon.', 'counter', [['', counters.failures]]),
    line('backup_sidecar_jobs_skipped_total', 'Scheduled jobs skipped because the previous one was still running.', 'counter', [['', counters.skipped]]),
    ...(health.wal === undefined
      ? []
      : [
          line('backup_sidecar_wal_segments', 'WAL segments kept in the volume (WAL_ARCHIVE).', 'gauge', [['', health.wal.segments]]),
          line('backup_sidecar_wal_newest_timestamp_seconds', 'When the newest WAL file was last written (0: none).', 'gauge', [['', (health.wal.newestAt?.getTime() ?? 0) / 1000]]),
          line('backup_sidecar_wal_streaming', '1 while the daemon streams WAL (as it last recorded).', 'gauge', health.walStreaming === undefined ? [] : [['', health.walStreaming.streaming ? 1 : 0]]),
          line('backup_sidecar_wal_lag_bytes', "WAL the server has that streaming has not written yet (while streaming).", 'gauge', health.walStreaming?.lag === undefined ? [] : [['', health.walStreaming.lag.bytes]]),
          line('backup_sidecar_wal_lag_seconds', 'How old the oldest WAL streaming has not written yet is (while streaming; measured every 10 s).', 'gauge', health.walStreaming?.lag === undefined ? [] : [['', health.walStreaming.lag.seconds]]),
          line('backup_sidecar_wal_gaps', 'Holes in the WAL kept: recovery cannot cross one.', 'gauge', [['', health.wal.gaps.length]]),
          line('backup_sidecar_wal_not_offsite', 'Archived WAL files not yet in each remote target.', 'gauge', [...(walBehind ?? [])].map(([url, n]) => [`{target="${labelValue(url)}"}`, n])),
          line('backup_sidecar_wal_slot_active', '1 while the replication slot is streaming to the sidecar.', 'gauge', slot === undefined ? [] : [['', slot.active ? 1 : 0]]),
          line('backup_sidecar_wal_slot_retained_bytes', 'WAL the server keeps for the slot: how far the sidecar is behind.', 'gauge', slot === undefined ? [] : [['', slot.retainedBytes]]),
        ]),
    line('backup_sidecar_last_drill_success', '1 when the last restore drill passed (0 also when there was none).', 'gauge', [['', drill?.ok === true ? 1 : 0]]),
    line('backup_sidecar_last_drill_timestamp_seconds', 'When the last restore drill finished (0: never).', 'gauge', [['', seconds(drill?.finishedAt)]]),
    line('backup_sidecar_last_drill_duration_seconds', 'Duration of the last restore drill.', 'gauge', [['', (drill?.durationMs ?? 0) / 1000]]),
    line('backup_sidecar_drills_total', 'Restore drills run by this daemon.', 'counter', [['', counters.drills]]),
    line('backup_sidecar_drill_failures_total', 'Restore drills that failed, in this daemon.', 'counter', [['', counters.drillFailures]]),
  ].join('\n')}\n`;
}

/** The sources the size-drop metric speaks of: those of the newest run, and any with an open drop. */
function sourcesOf(newest: Manifest | undefined, drops: readonly Drop[]): { source: string; kind: string }[] {
  const all = [...(newest?.artifacts ?? []), ...drops];
  return all.filter((a, i) => all.findIndex((b) => b.source === a.source && b.kind === a.kind) === i);
}
