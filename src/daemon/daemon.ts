import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Cron } from 'croner';
import type { Context } from '../context.ts';
import { RunError, describe } from '../errors.ts';
import { healthOf } from '../health/health.ts';
import { metricsOf, type DaemonCounters } from '../health/metrics.ts';
import { PAGE_CSP, statusPage } from '../health/page.ts';
import { buildStatusReport } from '../health/report.ts';
import { drill } from '../run/drill.ts';
import { notifyDrill } from '../run/webhooks.ts';
import { backupJob } from '../run/job.ts';
import { onSignal } from '../signals.ts';
import { connectServer } from '../pg/server.ts';
import { recordDaemonStart } from '../volume/status.ts';
import { WalReceiver } from '../wal/receiver.ts';

/** Whether a request carries the status page's password (basic auth, any user name), compared in constant time. */
function authorized(header: string | undefined, password: string): boolean {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (match === null) return false;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const given = decoded.slice(decoded.indexOf(':') + 1);
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return decoded.includes(':') && timingSafeEqual(digest(given), digest(password));
}

/**
 * Serves the status page on / (HTML, or with ?format=json the report; behind STATUS_PASSWORD when set),
 * /healthz (200 or 503, the reason as text) and /metrics (Prometheus), on HEALTHCHECK_BIND.
 */
async function healthServer(ctx: Context, port: number, counters: DaemonCounters): Promise<Server> {
  const { config } = ctx;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (req.method !== 'GET' || (path !== '/' && path !== '/healthz' && path !== '/metrics')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /, /healthz or /metrics\n');
      return;
    }
    const password = config.daemon.statusPassword;
    if (path === '/' && password !== undefined && !authorized(req.headers.authorization, password)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="backup-sidecar", charset="UTF-8"' }).end('the status page needs the password of STATUS_PASSWORD_FILE; /healthz and /metrics are open\n');
      return;
    }
    const answer = async () => {
      if (path === '/healthz') {
        const health = await healthOf(ctx);
        res.writeHead(health.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(`${health.reason}\n`);
      } else if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(await metricsOf(ctx, counters));
      } else {
        // `/` answers with the health status code too: docker-postgres-backup-local's probes ask there.
        const report = await buildStatusReport(ctx);
        const code = report.health.healthy ? 200 : 503;
        if (url.searchParams.get('format') === 'json') res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(report, null, 2)}\n`);
        else res.writeHead(code, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': PAGE_CSP, 'x-content-type-options': 'nosniff' }).end(statusPage(report));
      }
    };
    answer().catch((error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${describe(error)}\n`));
  });
  server.listen(port, config.daemon.healthBind);
  try {
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? describe(error);
    throw new RunError(`cannot listen on ${config.daemon.healthBind ?? 'every interface'} port ${port} (${code}): check HEALTHCHECK_BIND (an address of this host) and HEALTHCHECK_PORT (free, and above 1023 for a non-root user)`);
  }
  ctx.log.info({ port, bind: config.daemon.healthBind ?? 'every interface', auth: config.daemon.statusPassword === undefined ? 'none' : 'basic auth on /' }, 'serving the status page on /, /healthz and /metrics');
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
  // WAL_ARCHIVE: WAL streams all the time; base backups are jobs like backups, never beside one.
  const wal = config.wal.enabled ? new WalReceiver(ctx) : undefined;
  const baseJob =
    wal === undefined
      ? undefined
      : new Cron(config.wal.baseBackupSchedule, { timezone: config.timeZone, protect: true, catch: (error) => log.error({ err: describe(error) }, 'scheduled base backup crashed') }, () => {
          running = (running ?? drilling ?? Promise.resolve())
            .then(async () => {
              const { outcome, error } = await backupJob(ctx, undefined, 'basebackup');
              if (error !== undefined) log.error({ err: error.message }, outcome.ok ? 'base backup done, with problems' : 'base backup failed');
            })
            .finally(() => {
              running = undefined;
            });
          return running;
        });
  wal?.start();
  const server = config.daemon.healthPort === undefined ? undefined : await healthServer(ctx, config.daemon.healthPort, counters);
  await recordDaemonStart(config.backupDir, ctx.now()).catch((error: unknown) =>
    log.warn({ err: describe(error) }, 'could not record the daemon start in the volume; the health check reports unhealthy until the first backup'),
  );
  log.info(
    { schedule: config.daemon.schedule, timeZone: config.timeZone, next: job.nextRun()?.toISOString(), nextDrill: drillJob?.nextRun()?.toISOString(), nextBaseBackup: baseJob?.nextRun()?.toISOString() },
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
  baseJob?.stop();
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
  await wal?.stop();
  if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  log.info('stopped');
  return 0;
}
