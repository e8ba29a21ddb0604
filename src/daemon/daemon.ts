import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Cron } from 'croner';
import type { Context } from '../context.ts';
import { describe } from '../errors.ts';
import { healthOf, scheduleInterval } from '../health/health.ts';
import { metricsText, type DaemonCounters } from '../health/metrics.ts';
import { drill } from '../run/drill.ts';
import { notifyDrill } from '../run/webhooks.ts';
import { backupJob } from '../run/job.ts';
import { onSignal } from '../signals.ts';
import { connectServer } from '../pg/server.ts';
import { recordDaemonStart } from '../volume/status.ts';

/** Serves / and /healthz (200 or 503, the reason as text) and /metrics (Prometheus). */
async function healthServer(ctx: Context, port: number, counters: DaemonCounters, schedule: () => { intervalSeconds: number; next: Date | undefined }): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/' && path !== '/healthz' && path !== '/metrics')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
      return;
    }
    healthOf(ctx).then(
      (health) => {
        // `/` answers like /healthz: docker-postgres-backup-local's probes ask there.
        if (path !== '/metrics') res.writeHead(health.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(`${health.reason}\n`);
        else res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metricsText(health, counters, schedule()));
      },
      (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${describe(error)}\n`),
    );
  });
  server.listen(port);
  await once(server, 'listening');
  ctx.log.info({ port }, 'serving /healthz and /metrics');
  return server;
}

/**
 * VALIDATE_ON_START: whether PostgreSQL and each remote target answer now, one log line each. A failure is
 * a warning, not a stop: the server may come up later, and the health check reports failed runs.
 */
async function validateOnStart(ctx: Context): Promise<void> {
  const { config, log } = ctx;
  const pg = config.postgres;
  if (pg !== undefined) {
    await connectServer(pg, pg.all ? pg.maintenanceDb : pg.databases[0]!).then(
      (server) => log.info({ server: server.serverVersion, client: server.client.binDir }, `start check: PostgreSQL at ${pg.host}:${pg.port} answers`),
      (error: unknown) => log.warn({ err: describe(error) }, `start check: PostgreSQL at ${pg.host}:${pg.port} does not answer yet; backups fail until it does`),
    );
  }
  for (const target of await ctx.targets().catch(() => [])) {
    await target.check().then(
      () => log.info(`start check: ${target.url} answers`),
      (error: unknown) => log.warn({ err: describe(error) }, `start check: ${target.url} does not answer; runs stay in the volume until it does`),
    );
  }
}

/**
 * The long-running process: backups on SCHEDULE (never two at once: a run still going when the next is
 * due makes that one skip with a warning), one at start with BACKUP_ON_START, the health endpoints with
 * HEALTHCHECK_PORT. On SIGTERM or SIGINT it stops scheduling, lets a running backup finish within
 * SHUTDOWN_TIMEOUT or aborts it cleanly, and exits 0.
 */
export async function runDaemon(daemon: Context): Promise<number> {
  const counters: DaemonCounters = { runs: 0, failures: 0, outcomes: { ok: 0, partial: 0, failed: 0 }, skipped: 0, drills: 0, drillFailures: 0 };
  const abort = new AbortController();
  // Backups and drills stop on this signal: the daemon aborts them only at its shutdown timeout.
  const ctx: Context = { ...daemon, signal: abort.signal };
  const { config, log } = ctx;
  let running: Promise<void> | undefined;
  // A drill holds the volume lock: a backup due during one waits for it; a drill due during a backup is skipped.
  let drilling: Promise<void> | undefined;

  const work = async () => {
    counters.runs += 1;
    const { outcome, error } = await backupJob(ctx);
    if (!outcome.ok) counters.failures += 1;
    counters.outcomes[!outcome.ok ? 'failed' : error === undefined ? 'ok' : 'partial'] += 1;
    if (error !== undefined) log.error({ err: error.message }, outcome.ok ? 'backup done, with problems' : 'backup failed');
  };
  const job = new Cron(
    config.daemon.schedule,
    {
      timezone: config.timeZone,
      protect: () => {
        counters.skipped += 1;
        log.warn('the previous backup is still running: this scheduled run is skipped');
      },
      catch: (error) => log.error({ err: describe(error) }, 'scheduled backup crashed'),
    },
    () => {
      running = (drilling ?? Promise.resolve()).then(work).finally(() => {
        running = undefined;
      });
      return running;
    },
  );
  const drillWork = async () => {
    counters.drills += 1;
    try {
      const { report } = await drill(ctx, 'latest');
      if (!report.ok) counters.drillFailures += 1;
      await notifyDrill(config.hooks, report, log);
    } catch (error) {
      counters.drillFailures += 1;
      log.error({ err: describe(error) }, 'restore drill failed');
      await notifyDrill(config.hooks, { ok: false, error: describe(error) }, log);
    }
  };
  const drillJob =
    config.daemon.verifySchedule === undefined
      ? undefined
      : new Cron(config.daemon.verifySchedule, { timezone: config.timeZone, protect: true, catch: (error) => log.error({ err: describe(error) }, 'scheduled drill crashed') }, () => {
          if (running !== undefined) {
            log.warn('a backup is running: this scheduled restore drill is skipped');
            return undefined;
          }
          drilling = drillWork().finally(() => {
            drilling = undefined;
          });
          return drilling;
        });
  const server = config.daemon.healthPort === undefined ? undefined : await healthServer(ctx, config.daemon.healthPort, counters, () => {
          const next = job.nextRuns(3);
          return { intervalSeconds: scheduleInterval(next) / 1000, next: next[0] };
        });
  await recordDaemonStart(config.backupDir, ctx.now()).catch((error: unknown) =>
    log.warn({ err: describe(error) }, 'could not record the daemon start in the volume; the health check reports unhealthy until the first backup'),
  );
  log.info(
    { schedule: config.daemon.schedule, timeZone: config.timeZone, next: job.nextRun()?.toISOString(), nextDrill: drillJob?.nextRun()?.toISOString() },
    'daemon started',
  );
  if (config.daemon.validateOnStart) void validateOnStart(ctx);
  if (config.daemon.onStart) void job.trigger();

  // The first signal stops scheduling and waits for a running backup; a second aborts it at once.
  const signal = await new Promise<string>((resolve) => {
    onSignal((name, count) => {
      if (count === 1) resolve(name);
      else abort.abort(new Error(`a second ${name} arrived`));
    });
  });
  job.stop();
  drillJob?.stop();
  log.info({ signal }, 'stopping: no more scheduled runs');
  if (running !== undefined || drilling !== undefined) {
    const timeout = config.daemon.shutdownTimeoutMs;
    log.info({ timeoutMs: timeout }, 'waiting for the running backup to finish');
    const timer = setTimeout(() => {
      log.warn({ timeoutMs: timeout }, 'shutdown timeout: aborting the running backup');
      abort.abort(new Error(`the daemon is shutting down (SHUTDOWN_TIMEOUT ${timeout} ms)`));
    }, timeout);
    await Promise.all([running, drilling]);
    clearTimeout(timer);
  }
  if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  log.info('stopped');
  return 0;
}
