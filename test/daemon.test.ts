import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, readJson, runCli, tempDir, until } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
let hooks: Server;
const received: { path: string; body: { event: string; status: string; runId: string | null; error: string | null; bytes: number; checks?: { check: string; ok: boolean }[] } }[] = [];

async function runs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) for (const id of await readdir(join(dir, tier)).catch(() => [])) out.push(`${tier}/${id}`);
  return out;
}

function daemon(extra: Record<string, string>): ResultPromise<{ env: Record<string, string>; extendEnv: false; reject: false; all: true }> {
  return execa(process.execPath, [CLI, 'daemon'], { env: { ...env, ...extra }, extendEnv: false, reject: false, all: true });
}

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 5000);');
  work = await tempDir('daemon');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/a.txt'), 'a');
  hooks = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(text) });
      res.writeHead(req.url === '/broken' ? 500 : 204).end();
    });
  }).listen(0, '127.0.0.1');
  await once(hooks, 'listening');
  const port = (hooks.address() as { port: number }).port;
  env = {
    ...pg.env,
    PATH: process.env.PATH ?? '',
    POSTGRES_DB: 'app',
    MEDIA_PATHS: `media:${join(work, 'media')}`,
    LOG_LEVEL: 'info',
    WEBHOOK_URL: `http://127.0.0.1:${port}/all`,
    WEBHOOK_ERROR_URL: `http://127.0.0.1:${port}/errors`,
  };
});

afterAll(async () => {
  hooks?.close();
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the daemon', () => {
  it('VALIDATE_ON_START (default true): logs at start whether PostgreSQL answers; one that does not is a warning and the daemon keeps running', async () => {
    const port = await freePort();
    const down = await freePort();
    for (const [extra, expected] of [
      [{}, /"msg":"start check: PostgreSQL at 127\.0\.0\.1:\d+ answers"/],
      [{ POSTGRES_PORT: String(down) }, new RegExp(`"level":40.*"msg":"start check: PostgreSQL at 127\\.0\\.0\\.1:${down} does not answer yet; backups fail until it does"`)],
      [{ VALIDATE_ON_START: 'false' }, undefined],
    ] as const) {
      const child = daemon({ BACKUP_DIR: join(work, 'validate'), SCHEDULE: '0 0 1 1 *', HEALTHCHECK_PORT: String(port), ...extra });
      try {
        await until('the health endpoint', async () => ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)) === undefined ? undefined : true));
        await new Promise((r) => setTimeout(r, 1500));
      } finally {
        child.kill('SIGTERM');
      }
      const result = await child;
      expect(result.exitCode, result.all).toBe(0);
      if (expected === undefined) expect(result.all).not.toMatch(/start check/);
      else expect(result.all).toMatch(expected);
    }
  });

  it('backs up on a seconds schedule, serves health and metrics, and healthcheck follows the database going down and back', async () => {
    const dir = join(work, 'scheduled');
    const port = await freePort();
    const local = { ...env, BACKUP_DIR: dir, HEALTHCHECK_MAX_AGE: '1h' };
    const child = daemon({ BACKUP_DIR: dir, SCHEDULE: '*/2 * * * * *', HEALTHCHECK_PORT: String(port), BACKUP_PRE_COMMAND: 'echo pre-hook-ran', BACKUP_POST_COMMAND: 'echo "post-hook $BACKUP_STATUS"' });
    try {
      await until('two runs', async () => ((await runs(dir)).length >= 2 ? true : undefined));
      expect((await runCli(['healthcheck'], local)).exitCode).toBe(0);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toMatch(/^ok: the newest successful backup, \d{8}T\d{6}Z, is .* old\n$/);
      // docker-postgres-backup-local's probes ask for / and expect the health status code.
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^backup_sidecar_healthy 1$/m);
      expect(metrics).toMatch(/^backup_sidecar_last_run_success 1$/m);
      expect(metrics).toMatch(/^backup_sidecar_jobs_total [2-9]$/m);
      expect(metrics).toMatch(/^backup_sidecar_build_info\{version="[^"]+",node="\d+\.\d+\.\d+"\} 1$/m);
      expect(metrics).toMatch(/^backup_sidecar_artifact_bytes\{source="app",kind="postgres"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^backup_sidecar_artifact_bytes\{source="media",kind="media"\} [1-9]\d*$/m);
      expect(metrics).toMatch(/^backup_sidecar_artifact_duration_seconds\{source="app",kind="postgres"\} [\d.]+$/m);
      expect(metrics).toMatch(/^backup_sidecar_backups_total\{outcome="ok"\} [2-9]$/m);
      expect(metrics).toMatch(/^backup_sidecar_backups_total\{outcome="failed"\} 0$/m);
      expect(metrics).toMatch(/^backup_sidecar_schedule_interval_seconds 2$/m);
      const next = Number(/^backup_sidecar_next_run_timestamp_seconds ([\d.]+)$/m.exec(metrics)?.[1]);
      expect(Math.abs(next - Date.now() / 1000)).toBeLessThan(3);
      expect(received.filter((r) => r.path === '/all' && r.body.status === 'ok').length).toBeGreaterThanOrEqual(2);

      await pg.halt();
      try {
        const down = await until('healthcheck to fail', async () => {
          const r = await runCli(['healthcheck'], local);
          return r.exitCode === 1 ? r : undefined;
        });
        expect(down.stderr).toMatch(/^unhealthy: the last backup failed at \S+: cannot connect to PostgreSQL at 127\.0\.0\.1/m);
        expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
        expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(503);
        const failed = received.find((r) => r.path === '/errors');
        expect(failed?.body).toMatchObject({ status: 'failed', runId: null, error: expect.stringMatching(/cannot connect to PostgreSQL/) });
        const status = await runCli(['status'], local);
        expect(status.stdout).toMatch(/^health: FAILING: the last backup failed/m);
        expect(status.stdout).toMatch(/^last backup: FAILED at /m);
      } finally {
        await pg.start();
      }
      await until('healthcheck to pass again', async () => ((await runCli(['healthcheck'], local)).exitCode === 0 ? true : undefined));
    } finally {
      child.kill('SIGTERM');
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.all).toMatch(/"msg":"daemon started"/);
    expect(result.all).toMatch(/"hook":"BACKUP_PRE_COMMAND","msg":"pre-hook-ran"/);
    expect(result.all).toMatch(/"hook":"BACKUP_POST_COMMAND","msg":"post-hook ok"/);
    expect(result.all).toMatch(/"hook":"BACKUP_POST_COMMAND","msg":"post-hook failed"/);
    expect(result.all).toMatch(/"msg":"stopped"/);
    expect(result.all).not.toContain(env.WEBHOOK_URL);
  });

  it('never runs two backups at once: a run still going when the next is due is skipped with a warning', async () => {
    const dir = join(work, 'overlap');
    const bin = await wrapperBin(join(work, 'slow-bin'), { slowSeconds: 3 });
    const child = daemon({ BACKUP_DIR: dir, SCHEDULE: '* * * * * *', PG_BIN_DIR: bin });
    try {
      await until('a finished run', async () => ((await runs(dir)).length >= 1 ? true : undefined));
    } finally {
      child.kill('SIGTERM');
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.all).toMatch(/the previous backup is still running: this scheduled run is skipped/);
    // Started and finished alternate: never two runs in flight.
    const events = result.all.split('\n').filter((l) => /"msg":"backup (started|finished)"/.test(l)).map((l) => (l.includes('started') ? 'S' : 'F'));
    expect(events.join('')).toMatch(/^(SF)*S?$/);
  });

  it('SIGTERM during a run: waits SHUTDOWN_TIMEOUT, aborts cleanly (no partial files, no S3 objects), exits 0', async () => {
    const dir = join(work, 'shutdown');
    const bin = await wrapperBin(join(work, 'slower-bin'), { slowSeconds: 30 });
    const keysBefore = await s3.keys();
    const child = daemon({ BACKUP_DIR: dir, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', SHUTDOWN_TIMEOUT: '1s', PG_BIN_DIR: bin, ...s3.env, S3_PREFIX: 'shutdown' });
    await until('the run to be writing', async () => ((await readdir(join(dir, '.partial')).catch(() => [])).length > 0 ? true : undefined));
    const began = Date.now();
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(result.all).toMatch(/shutdown timeout: aborting the running backup/);
    expect(result.all).toMatch(/aborted: the daemon is shutting down/);
    expect(await readdir(join(dir, '.partial')).catch(() => [])).toEqual([]);
    expect(await runs(dir)).toEqual([]);
    expect(await s3.keys()).toEqual(keysBefore);
  });

  it('SIGTERM during a slow BACKUP_PRE_COMMAND: the hook is stopped after SHUTDOWN_TIMEOUT, exit 0', async () => {
    const dir = join(work, 'shutdown-hook');
    const marker = join(work, 'hook-started');
    const child = daemon({ BACKUP_DIR: dir, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', SHUTDOWN_TIMEOUT: '1s', BACKUP_PRE_COMMAND: `touch ${marker}; sleep 60` });
    await until('the hook to be running', async () => (await readdir(work)).includes('hook-started') || undefined);
    const began = Date.now();
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(result.all).toMatch(/BACKUP_PRE_COMMAND failed \(stopped: the daemon is shutting down/);
    expect(await runs(dir)).toEqual([]);
  });

  it('VERIFY_SCHEDULE: drills the newest run, writes verify.json, reports it in list, status, metrics and webhooks; HEALTHCHECK_REQUIRE_VERIFY', async () => {
    const dir = join(work, 'drills');
    const port = await freePort();
    const local = { ...env, BACKUP_DIR: dir, HEALTHCHECK_MAX_AGE: '1h', HEALTHCHECK_REQUIRE_VERIFY: 'true' };
    const drills = () => received.filter((r) => r.body.event === 'drill');
    const before = drills().length;
    const passing = daemon({ BACKUP_DIR: dir, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', VERIFY_SCHEDULE: '*/2 * * * * *', VERIFY_SQL: 'SELECT count(*) = 5000 FROM t', HEALTHCHECK_PORT: String(port) });
    try {
      const [run] = await until('a run', async () => ((await runs(dir)).length > 0 ? runs(dir) : undefined));
      const report = await until('verify.json', async () => readJson<{ ok: boolean; checks: { check: string }[] }>(join(dir, run!, 'verify.json')).catch(() => undefined));
      expect(report.ok).toBe(true);
      expect(report.checks.map((c) => c.check)).toContain('VERIFY_SQL on app');
      await until('the drill webhook', async () => (drills().length > before ? true : undefined));
      expect(drills().at(-1)!.body).toMatchObject({ event: 'drill', status: 'ok', runId: run!.split('/')[1] });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^backup_sidecar_last_drill_success 1$/m);
      expect(metrics).toMatch(/^backup_sidecar_drills_total [1-9]\d*$/m);
      expect((await runCli(['list'], local)).stdout).toMatch(/\spassed\s/);
      expect((await runCli(['status'], local)).stdout).toMatch(/^last restore drill: passed at \S+ on run /m);
      expect((await runCli(['healthcheck'], local)).exitCode).toBe(0);
    } finally {
      passing.kill('SIGTERM');
    }
    expect((await passing).exitCode).toBe(0);

    const failing = daemon({ BACKUP_DIR: dir, SCHEDULE: '0 0 1 1 *', VERIFY_SCHEDULE: '*/2 * * * * *', VERIFY_SQL: 'SELECT false' });
    try {
      const unhealthy = await until('healthcheck to fail on the drill', async () => {
        const r = await runCli(['healthcheck'], local);
        return r.exitCode === 1 ? r : undefined;
      });
      expect(unhealthy.stderr).toMatch(/^unhealthy: the last restore drill FAILED at \S+ on run \S+: VERIFY_SQL on app: VERIFY_SQL returned "f", not true$/m);
      expect((await runCli(['healthcheck'], { ...local, HEALTHCHECK_REQUIRE_VERIFY: 'false' })).exitCode).toBe(0);
      await until('the failed drill webhook', async () => (received.some((r) => r.path === '/errors' && r.body.event === 'drill') ? true : undefined));
      expect((await runCli(['list', '--json'], local)).stdout).toMatch(/"ok": false/);
    } finally {
      failing.kill('SIGTERM');
    }
    expect((await failing).exitCode).toBe(0);
    const left = await pg.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE 'backup\\_sidecar\\_drill\\_%';");
    expect(left).toBe('0');
  });
});
