import { setTimeout as sleep } from 'node:timers/promises';
import prettyBytes from 'pretty-bytes';
import type { HooksConfig, WebhookFormat } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { dropNote } from '../retention/drops.ts';
import type { DrillReport } from '../volume/drill-report.ts';
import type { JobOutcome } from '../volume/status.ts';

/**
 * How a job went, for the webhooks: `partial` when the local run is complete but something after it was
 * not (its offsite copy, earlier runs' uploads, the post hook): a failure to every observer all the same.
 */
export type JobStatus = 'ok' | 'partial' | 'failed';

/** Attempts per webhook call; transient failures (network, 5xx, 429) are retried after 1 s, then 2 s. */
const ATTEMPTS = 3;
const TIMEOUT_MS = 10_000;

type Event = { status: JobStatus | 'start'; payload: Record<string, unknown> };

function hasDrops(payload: Record<string, unknown>): payload is { drops: DropNote[] } {
  return Array.isArray(payload.drops) && payload.drops.length > 0;
}

/** One line for people: what happened, for chat formats and healthchecks.io. */
export function summary(event: Event): string {
  const { status, payload } = event;
  const what = payload.event === 'drill' ? 'restore drill' : 'backup';
  if (status === 'start') return `backup-sidecar: ${what} started`;
  const run = typeof payload.runId === 'string' ? ` of run ${payload.runId}` : '';
  // A failed job made no run: no size, no offsite state to speak of.
  const made = status !== 'failed';
  const bytes = made && typeof payload.bytes === 'number' ? `, ${prettyBytes(payload.bytes, { binary: true })}` : '';
  const offsite = made && typeof payload.offsite === 'string' && payload.offsite !== 'off' ? `, offsite ${payload.offsite}` : '';
  const error = typeof payload.error === 'string' ? `: ${payload.error.split('\n')[0]}` : '';
  const word = status === 'ok' ? 'ok' : status === 'partial' ? 'PARTIAL' : 'FAILED';
  const drops = hasDrops(payload) ? `; SIZE DROP: ${payload.drops.map((d) => (d.what === 'size' ? `${d.kind} ${d.source} ${prettyBytes(d.before)} → ${prettyBytes(d.after)}` : `${d.kind} ${d.source} table ${d.table} ${d.before} → ${d.after} rows`)).join(', ')} (expected? backup-sidecar ack ${String(event.payload.runId)})` : '';
  return `backup-sidecar: ${what}${run} ${word}${bytes}${offsite}${error}${drops}`;
}

/** The request a format asks for: JSON as is, chat payloads, or plain text (ntfy reads its headers). */
export function requestFor(format: WebhookFormat, event: Event): { headers: Record<string, string>; body: string } {
  const line = summary(event);
  switch (format) {
    case 'slack':
      return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: line }) };
    case 'discord':
      return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: line }) };
    case 'ntfy': {
      const bad = event.status === 'failed' || event.status === 'partial' || hasDrops(event.payload);
      return { headers: { 'content-type': 'text/plain', title: 'backup-sidecar', priority: bad ? 'high' : 'default', tags: bad ? 'warning' : 'white_check_mark' }, body: line };
    }
    case 'text':
      return { headers: { 'content-type': 'text/plain' }, body: line };
    default:
      return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: event.status, ...event.payload }) };
  }
}

/** POSTs with retries; a failure is logged, never thrown; the URL is never logged (it often carries a token). */
async function send(name: string, url: string, request: { headers: Record<string, string>; body: string }, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let why: string;
    try {
      const response = await fetch(url, { method: 'POST', ...request, signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (response.ok) {
        log.debug({ webhook: name, status: response.status }, 'webhook called');
        return;
      }
      why = `HTTP ${response.status}`;
      if (response.status < 500 && response.status !== 429) {
        log.warn({ webhook: name, status: response.status }, 'webhook answered with an error status');
        return;
      }
    } catch (error) {
      why = (error as Error).name === 'TimeoutError' ? `timed out after ${TIMEOUT_MS / 1000} s` : (error as Error).message;
    }
    if (attempt >= ATTEMPTS) {
      log.warn({ webhook: name, err: why, attempts: attempt }, 'webhook failed');
      return;
    }
    await sleep(1000 * 2 ** (attempt - 1));
  }
}

/**
 * Tells WEBHOOK_URL (every event), WEBHOOK_ERROR_URL (anything but ok), WEBHOOK_PRE/POST_BACKUP_URL
 * (a job's start, a job's full success) in WEBHOOK_FORMAT, and HEALTHCHECKS_URL in the healthchecks.io
 * convention (/start, success, /fail with the reason). A failing webhook never fails the job.
 */
async function post(hooks: HooksConfig, event: Event, log: Logger): Promise<void> {
  const { status, payload } = event;
  const candidates =
    status === 'start'
      ? [{ name: 'WEBHOOK_PRE_BACKUP_URL', url: hooks.webhookPreUrl }]
      : [
          { name: 'WEBHOOK_URL', url: hooks.webhookUrl },
          { name: 'WEBHOOK_ERROR_URL', url: status === 'ok' && !hasDrops(payload) ? undefined : hooks.webhookErrorUrl },
          { name: 'WEBHOOK_POST_BACKUP_URL', url: status === 'ok' && payload.event === 'backup' ? hooks.webhookPostUrl : undefined },
        ];
  const calls = candidates
    .filter((t): t is { name: string; url: string } => t.url !== undefined)
    .map(({ name, url }) => send(name, url, requestFor(hooks.webhookFormat, event), log));
  // healthchecks.io follows backups only: drills would ping the same check.
  if (hooks.healthchecksUrl !== undefined && payload.event === 'backup') {
    const base = hooks.healthchecksUrl.replace(/\/+$/, '');
    const path = status === 'start' ? '/start' : status === 'ok' ? '' : '/fail';
    calls.push(send('HEALTHCHECKS_URL', `${base}${path}`, { headers: { 'content-type': 'text/plain' }, body: summary(event) }, log));
  }
  await Promise.all(calls);
}

/** How a job went, from its recorded outcome. */
export function jobStatus(outcome: JobOutcome): JobStatus {
  return !outcome.ok ? 'failed' : outcome.error === null ? 'ok' : 'partial';
}

/** A size drop as the webhooks and the history carry it. */
export type DropNote = ReturnType<typeof dropNote>;

/**
 * The webhooks after a backup job: `event: "backup"`, the outcome, each remote target's state, duration,
 * run folder, and the size drops the run was flagged for (which also reach WEBHOOK_ERROR_URL).
 */
export async function notify(
  hooks: HooksConfig,
  outcome: JobOutcome & { durationMs: number; dir: string | null; targets: { url: string; state: string }[]; drops: DropNote[] },
  log: Logger,
): Promise<void> {
  await post(hooks, { status: jobStatus(outcome), payload: { event: 'backup', ...outcome } }, log);
}

/** WEBHOOK_PRE_BACKUP_URL and HEALTHCHECKS_URL/start, when a backup job starts: `{"status":"start","event":"backup","startedAt":…}`. */
export async function notifyStart(hooks: HooksConfig, startedAt: Date, log: Logger): Promise<void> {
  await post(hooks, { status: 'start', payload: { event: 'backup', startedAt: startedAt.toISOString() } }, log);
}

/** The webhooks after a restore drill: `event: "drill"`, the report (or why there was none). */
export async function notifyDrill(hooks: HooksConfig, report: DrillReport | { ok: false; error: string }, log: Logger): Promise<void> {
  await post(hooks, { status: report.ok ? 'ok' : 'failed', payload: { event: 'drill', ...report } }, log);
}
