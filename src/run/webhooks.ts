import type { HooksConfig } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { DrillReport } from '../volume/drill-report.ts';
import type { JobOutcome } from '../volume/status.ts';

/**
 * How a job went, for the webhooks: `partial` when the local run is complete but something after it was
 * not (its offsite copy, earlier runs' uploads, the post hook): a failure to every observer all the same.
 */
export type JobStatus = 'ok' | 'partial' | 'failed';

/**
 * Tells WEBHOOK_URL (every event) and WEBHOOK_ERROR_URL (anything but ok) what happened, as JSON. A
 * failing webhook is logged and never fails the job; the URLs are never logged (they often carry a token).
 */
async function post(hooks: HooksConfig, status: JobStatus | 'start', payload: Record<string, unknown>, log: Logger): Promise<void> {
  const candidates =
    status === 'start'
      ? [{ name: 'WEBHOOK_PRE_BACKUP_URL', url: hooks.webhookPreUrl }]
      : [
          { name: 'WEBHOOK_URL', url: hooks.webhookUrl },
          { name: 'WEBHOOK_ERROR_URL', url: status === 'ok' ? undefined : hooks.webhookErrorUrl },
          { name: 'WEBHOOK_POST_BACKUP_URL', url: status === 'ok' && payload.event === 'backup' ? hooks.webhookPostUrl : undefined },
        ];
  const targets = candidates.filter((t): t is { name: string; url: string } => t.url !== undefined);
  const body = JSON.stringify({ status, ...payload });
  await Promise.all(
    targets.map(async ({ name, url }) => {
      try {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
        if (!response.ok) log.warn({ webhook: name, status: response.status }, 'webhook answered with an error status');
        else log.debug({ webhook: name, status: response.status }, 'webhook called');
      } catch (error) {
        log.warn({ webhook: name, err: (error as Error).name === 'TimeoutError' ? 'timed out after 10 s' : (error as Error).message }, 'webhook failed');
      }
    }),
  );
}

/** The webhooks after a backup job: `event: "backup"`, the outcome, duration and run folder. */
export async function notify(hooks: HooksConfig, outcome: JobOutcome & { durationMs: number; dir: string | null }, log: Logger): Promise<void> {
  await post(hooks, !outcome.ok ? 'failed' : outcome.error === null ? 'ok' : 'partial', { event: 'backup', ...outcome }, log);
}

/** The webhooks after a restore drill: `event: "drill"`, the report (or why there was none). */
export async function notifyDrill(hooks: HooksConfig, report: DrillReport | { ok: false; error: string }, log: Logger): Promise<void> {
  await post(hooks, report.ok ? 'ok' : 'failed', { event: 'drill', ...report }, log);
}

/** WEBHOOK_PRE_BACKUP_URL, when a backup job starts: `{"status":"start","event":"backup","startedAt":…}`. */
export async function notifyStart(hooks: HooksConfig, startedAt: Date, log: Logger): Promise<void> {
  await post(hooks, 'start', { event: 'backup', startedAt: startedAt.toISOString() }, log);
}
