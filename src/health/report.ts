import { z } from 'zod';
import type { Context } from '../context.ts';
import { targetStates } from '../manifest.ts';
import { PRE_RESTORE, RUN_TIERS } from '../naming.ts';
import { openDrops } from '../retention/drops.ts';
import { readHistory, type BackupEntry, type DrillEntry } from '../volume/history.ts';
import { freeSpace } from '../util/fs.ts';
import { runSize, volumeDrops, type StoredRun } from '../volume/runs.ts';
import { VERSION } from '../version.ts';
import type { ReceiverState } from '../wal/state.ts';
import { healthOf, scheduleOf } from './health.ts';

/** Runs on the status page: its charts span this many. */
export const PAGE_RUNS = 90;

const iso = z.iso.datetime();
const count = z.number().int().nonnegative();
const targetState = z.object({ url: z.string(), state: z.enum(['pending', 'complete', 'failed']) });
const drop = z.object({
  runId: z.string(),
  previousRunId: z.string(),
  source: z.string(),
  kind: z.string(),
  what: z.enum(['size', 'rows']),
  table: z.string().nullable(),
  before: count,
  after: count,
});

/**
 * What `GET /?format=json` answers and the status page shows: one documented schema (README, "Status
 * page"), version 1. Built from the volume (runs, .status.json, .history.jsonl) and the configuration; no
 * secret, path of a secret or credential is in it (remote targets appear as their redacted URLs).
 */
export const statusReport = z.object({
  schemaVersion: z.literal(1),
  generatedAt: iso,
  version: z.string(),
  health: z.object({ healthy: z.boolean(), reason: z.string(), maxAgeSeconds: z.number() }),
  schedule: z.object({
    cron: z.string(),
    timeZone: z.string(),
    next: iso.nullable(),
    intervalSeconds: z.number(),
    drillCron: z.string().nullable(),
    nextDrill: iso.nullable(),
  }),
  /** The newest complete run of each tier that has one. */
  tiers: z.array(z.object({ tier: z.string(), runs: count, newest: z.object({ runId: z.string(), startedAt: iso, ageSeconds: z.number(), bytes: count }) })),
  /** The last runs (up to 90), oldest first: backup jobs from the history, failed ones included. */
  runs: z.array(
    z.object({
      runId: z.string().nullable(),
      tier: z.string().nullable(),
      startedAt: iso,
      finishedAt: iso,
      status: z.enum(['ok', 'partial', 'failed']),
      bytes: count,
      artifacts: z.array(z.object({ source: z.string(), kind: z.string(), size: count, durationSeconds: z.number().nullable() })),
      /** Each remote target's state: now, for a run still in the volume; when it was made, otherwise. */
      targets: z.array(targetState),
      drill: z.object({ ok: z.boolean(), finishedAt: iso, failed: z.array(z.string()) }).nullable(),
      /** Whether the run folder is still in the volume (retention removes old ones; the history keeps them). */
      inVolume: z.boolean(),
      /** Flagged for a size drop: open until `backup-sidecar ack`, then acknowledged. */
      drop: z.enum(['open', 'acknowledged']).nullable(),
      error: z.string().nullable(),
    }),
  ),
  /** Size drops nobody acknowledged yet (`backup-sidecar ack <runId>`): their previous runs are kept. */
  drops: z.array(drop),
  disk: z.object({ freeBytes: count.nullable(), minBytes: count, low: z.boolean() }),
  lastError: z.object({ at: iso, message: z.string() }).nullable(),
  lastDrill: z.object({ runId: z.string(), ok: z.boolean(), finishedAt: iso }).nullable(),
  /** Runs dated in the future (forged, or a clock that jumped): kept, never counted. */
  suspicious: z.array(z.string()),
  /**
   * With WAL_ARCHIVE: the WAL kept, when it was last written, and the first missing segment of each gap;
   * whether the daemon streams (as it last recorded), and while it does, how far behind the server it is.
   */
  wal: z
    .object({
      segments: count,
      newest: z.string().nullable(),
      newestAt: iso.nullable(),
      gaps: z.array(z.string()),
      streaming: z.object({ up: z.boolean(), since: iso, error: z.string().nullable(), lag: z.object({ bytes: count, seconds: z.number().nonnegative(), at: iso }).nullable() }).nullable(),
    })
    .nullable(),
});
export type StatusReport = z.infer<typeof statusReport>;
type ReportRun = StatusReport['runs'][number];

/** A run in the volume the history does not know (made before it existed): as its manifest tells. */
function fromVolume(run: StoredRun): ReportRun {
  const m = run.manifest!;
  const targets = targetStates(m).map((t) => ({ url: t.url, state: t.state }));
  return {
    runId: run.id,
    tier: run.tier,
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    status: targets.every((t) => t.state === 'complete') ? 'ok' : 'partial',
    bytes: runSize(run),
    artifacts: m.artifacts.map((a) => ({ source: a.source, kind: a.kind, size: a.size, durationSeconds: a.durationMs === undefined ? null : a.durationMs / 1000 })),
    targets,
    drill: null,
    inVolume: true,
    drop: null,
    error: null,
  };
}

function fromHistory(entry: BackupEntry): ReportRun {
  return {
    runId: entry.runId,
    tier: entry.tier,
    startedAt: entry.startedAt,
    finishedAt: entry.finishedAt,
    status: entry.status,
    bytes: entry.artifacts.reduce((s, a) => s + a.size, 0),
    artifacts: entry.artifacts.map((a) => ({ source: a.source, kind: a.kind, size: a.size, durationSeconds: a.durationMs === null ? null : a.durationMs / 1000 })),
    targets: entry.targets,
    drill: null,
    inVolume: false,
    drop: entry.drops.length > 0 ? 'acknowledged' : null,
    error: entry.error,
  };
}

/** The status report, from the volume as it is now. */
export async function buildStatusReport(ctx: Context): Promise<StatusReport> {
  const { config } = ctx;
  const now = ctx.now();
  const health = await healthOf(ctx);
  const history = await readHistory(config.backupDir);
  const inVolume = new Map(health.runs.filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE).map((r) => [r.id, r]));

  const drills = new Map<string, DrillEntry>();
  for (const e of history) if (e.event === 'drill') drills.set(e.runId, e);
  const known = new Set<string>();
  const runs: ReportRun[] = [];
  for (const e of history) {
    if (e.event !== 'backup') continue;
    const run = fromHistory(e);
    const stored = e.runId === null ? undefined : inVolume.get(e.runId);
    if (stored !== undefined) {
      known.add(stored.id);
      // The volume knows better than the history: a later catch-up may have completed an upload.
      run.targets = targetStates(stored.manifest!).map((t) => ({ url: t.url, state: t.state }));
      run.inVolume = true;
    }
    runs.push(run);
  }
  for (const r of inVolume.values()) if (!known.has(r.id)) runs.push(fromVolume(r));
  runs.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const shown = runs.slice(-PAGE_RUNS);
  for (const run of shown) {
    if (run.runId === null) continue;
    const drill = inVolume.get(run.runId)?.drill ?? drills.get(run.runId);
    if (drill !== undefined) run.drill = { ok: drill.ok, finishedAt: drill.finishedAt, failed: drill.checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail.split('\n')[0]}`) };
  }

  const drops = openDrops(volumeDrops(health.runs, config.sizeDrop, ctx.notAfter())).map(({ acknowledged: _, ...d }) => d);
  for (const run of shown) if (drops.some((d) => d.runId === run.runId)) run.drop = 'open';

  const tiers: StatusReport['tiers'] = [];
  for (const tier of RUN_TIERS) {
    const of = health.runs.filter((r) => r.tier === tier && r.manifest !== undefined);
    const newest = of[0];
    if (newest === undefined) continue;
    tiers.push({ tier, runs: of.length, newest: { runId: newest.id, startedAt: newest.time.toISOString(), ageSeconds: Math.max(0, (now.getTime() - newest.time.getTime()) / 1000), bytes: runSize(newest) } });
  }
  const schedule = scheduleOf(config.daemon.schedule, config.timeZone, now);
  const drillSchedule = config.daemon.verifySchedule === undefined ? undefined : scheduleOf(config.daemon.verifySchedule, config.timeZone, now);
  const freeBytes = (await freeSpace(config.backupDir)) ?? null;
  // The newest job with an error: a failed one, or a good run whose offsite copy or hook failed.
  const last = health.status?.last;
  const failure = last?.error != null ? last : (health.status?.lastFailure ?? undefined);
  return statusReport.parse({
    schemaVersion: 1,
    generatedAt: now.toISOString(),
    version: VERSION,
    health: { healthy: health.healthy, reason: health.reason, maxAgeSeconds: health.maxAgeMs / 1000 },
    schedule: {
      cron: config.daemon.schedule,
      timeZone: config.timeZone,
      next: schedule.next?.toISOString() ?? null,
      intervalSeconds: schedule.intervalMs / 1000,
      drillCron: config.daemon.verifySchedule ?? null,
      nextDrill: drillSchedule?.next?.toISOString() ?? null,
    },
    tiers,
    runs: shown,
    drops,
    disk: { freeBytes, minBytes: config.diskFreeMin, low: freeBytes !== null && freeBytes < config.diskFreeMin },
    lastError: failure === undefined ? null : { at: failure.finishedAt, message: (failure.error ?? 'unknown error').split('\n')[0] },
    lastDrill: health.lastDrill === undefined ? null : { runId: health.lastDrill.runId, ok: health.lastDrill.ok, finishedAt: health.lastDrill.finishedAt },
    suspicious: health.suspicious.map((r) => `${r.tier}/${r.id}`),
    wal: health.wal === undefined ? null : { segments: health.wal.segments, newest: health.wal.newest ?? null, newestAt: health.wal.newestAt?.toISOString() ?? null, gaps: health.wal.gaps, streaming: streamingOf(health.walStreaming) },
  });
}

function streamingOf(state: ReceiverState | undefined): NonNullable<StatusReport['wal']>['streaming'] {
  return state === undefined ? null : { up: state.streaming, since: state.since, error: state.error, lag: state.streaming ? (state.lag ?? null) : null };
}
