import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusReport, type StatusReport } from '../src/health/report.ts';
import { ROOT, CLI, runCli, tempDir, until } from './support/cli.ts';
import { viewInChromium } from './support/chromium.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { S3_SECRET, startS3, type TestS3 } from './support/s3-server.ts';
import { promtool } from './support/promtool.ts';

/**
 * A volume with a real history: backups every two days over four weeks (simulated with BACKUP_FAKE_NOW),
 * one failure, one restore drill, then a table emptied by "an app bug": the next run is flagged, and
 * retention (3 days) keeps the good run before it until someone acknowledges the drop.
 */
let pg: TestServer;
let s3: TestS3;
let work: string;
let dir: string;
let env: Record<string, string>;
let hooks: Server;
const received: { path: string; body: { runId: string | null; drops?: { source: string; what: string }[] } }[] = [];
const START = Date.parse('2026-11-01T02:00:00Z');
const DAY = 86_400_000;
const at = (day: number, hours = 0) => new Date(START + day * DAY + hours * 3_600_000).toISOString().replace('.000Z', 'Z');
const runIdAt = (day: number) => at(day).replaceAll('-', '').replaceAll(':', '');
const PASSWORD = 'status-page-Pw-7q';

async function volumeRuns(): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) for (const id of await readdir(join(dir, tier)).catch(() => [])) out.push(id);
  return out.sort();
}

async function backupAt(day: number, extra: Record<string, string> = {}) {
  return runCli(['backup'], { ...env, BACKUP_FAKE_NOW: at(day), ...extra });
}

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE t (x int PRIMARY KEY, s text); INSERT INTO t SELECT x, md5(x::text) FROM generate_series(1, 20000) x;');
  work = await tempDir('status-page');
  dir = join(work, 'backups');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/a.txt'), 'a'.repeat(1000));
  await writeFile(join(work, 'status-password'), `${PASSWORD}\n`);
  hooks = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(text) });
      res.writeHead(204).end();
    });
  }).listen(0, '127.0.0.1');
  await once(hooks, 'listening');
  const hookPort = (hooks.address() as { port: number }).port;
  env = {
    ...pg.env,
    ...s3.env,
    BACKUP_DIR: dir,
    POSTGRES_DB: 'app',
    MEDIA_PATHS: `media:${join(work, 'media')}`,
    SCHEDULE: '0 2 * * *',
    BACKUP_KEEP_DAYS: '3',
    BACKUP_KEEP_WEEKS: '0',
    BACKUP_KEEP_MONTHS: '0',
    BACKUP_KEEP_YEARS: '0',
    WEBHOOK_URL: `http://127.0.0.1:${hookPort}/all`,
    WEBHOOK_ERROR_URL: `http://127.0.0.1:${hookPort}/errors`,
  };
  const down = await freePort();
  for (let day = 0; day <= 24; day += 2) {
    if (day === 18) await pg.sql('app', 'DELETE FROM t WHERE x > 150;');
    const result = await backupAt(day, day === 14 ? { POSTGRES_PORT: String(down) } : {});
    expect(result.exitCode, result.stderr).toBe(day === 14 ? 1 : 0);
    if (day === 16) {
      const drill = await runCli(['verify', '--restore', 'latest'], { ...env, BACKUP_FAKE_NOW: at(16, 1) });
      expect(drill.exitCode, drill.stderr).toBe(0);
    }
  }
}, 240_000);

afterAll(async () => {
  hooks?.close();
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('size drops', () => {
  it('flag the first run after the drop in the log, status, webhooks (also WEBHOOK_ERROR_URL) and .history.jsonl', async () => {
    const flagged = runIdAt(18);
    const status = await runCli(['status'], { ...env, BACKUP_FAKE_NOW: at(24, 2) });
    expect(status.stdout).toContain(`SIZE DROP in run ${flagged}: size drop of postgres app`);
    expect(status.stdout).toMatch(new RegExp(`row drop of postgres app, table public\\.t \\(20000 → 150 rows\\); run ${runIdAt(16)} is kept until \`backup-sidecar ack ${flagged}\``));
    const hooked = received.filter((r) => r.body.runId === flagged);
    expect(hooked.map((r) => r.path).sort()).toEqual(['/all', '/errors']);
    expect(hooked[0]!.body.drops?.map((d) => d.what).sort()).toEqual(['rows', 'size']);
    // Runs after it are small too, but not flagged again: the drop is one event.
    expect(received.filter((r) => (r.body.drops?.length ?? 0) > 0).map((r) => r.body.runId)).toEqual([flagged, flagged]);
    const history = (await readFile(join(dir, '.history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: string; status?: string; drops?: unknown[] });
    expect(history.filter((h) => h.event === 'backup').map((h) => h.status)).toEqual([...Array(7).fill('ok'), 'failed', ...Array(5).fill('ok')]);
    expect(history.filter((h) => h.event === 'drill')).toHaveLength(1);
  });

  it('retention keeps the run before the drop (and the flagged one) in the volume and S3 until `ack`; then they go', async () => {
    const held = [runIdAt(16), runIdAt(18)];
    // BACKUP_KEEP_DAYS=3 keeps days 22 and 24; 16 and 18 are held.
    expect(await volumeRuns()).toEqual([...held, runIdAt(22), runIdAt(24)]);
    const remote = async () => [...new Set((await s3.keys()).map((k) => /(\d{8}T\d{6}Z)/.exec(k)?.[1]).filter((x) => x !== undefined))].sort();
    expect(await remote()).toEqual([...held, runIdAt(22), runIdAt(24)]);
    const dry = await runCli(['prune', '--dry-run'], { ...env, BACKUP_FAKE_NOW: at(24, 2) });
    expect(dry.stdout).toMatch(new RegExp(`${runIdAt(16)}\\s+keep\\s+the last run before the size drop of postgres app`));

    const wrong = await runCli(['ack', runIdAt(22)], { ...env, BACKUP_FAKE_NOW: at(24, 2) });
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr).toContain(`run ${runIdAt(22)} has no size drop to acknowledge (SIZE_DROP_WARN 50%); flagged: ${runIdAt(18)}`);
    const bad = await runCli(['ack', '../x'], env);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('is not a run id');

    const ack = await runCli(['ack', runIdAt(18)], { ...env, BACKUP_FAKE_NOW: at(24, 3) });
    expect(ack.exitCode, ack.stderr).toBe(0);
    expect(ack.stdout).toContain(`acknowledged: size drop of postgres app`);
    expect(JSON.parse(await readFile(join(dir, 'daily', runIdAt(18), 'ack.json'), 'utf8'))).toMatchObject({ acknowledgedAt: expect.any(String) });
    const again = await runCli(['ack', runIdAt(18)], env);
    expect(again.stdout).toContain('already acknowledged');
    const status = await runCli(['status'], { ...env, BACKUP_FAKE_NOW: at(24, 3) });
    expect(status.stdout).not.toContain('SIZE DROP');

    const prune = await runCli(['prune'], { ...env, BACKUP_FAKE_NOW: at(24, 3) });
    expect(prune.exitCode, prune.stderr).toBe(0);
    expect(await volumeRuns()).toEqual([runIdAt(22), runIdAt(24)]);
    expect(await remote()).toEqual([runIdAt(22), runIdAt(24)]);
  });
});

describe('status page', () => {
  it('serves /, ?format=json (its schema), /healthz and /metrics; / needs STATUS_PASSWORD_FILE, the rest stay open; a real browser sees the verdict, the drop, the runs, with no console error', async () => {
    // A fresh drop to show: the table empties again.
    await pg.sql('app', 'DELETE FROM t WHERE x > 10;');
    const made = await backupAt(26);
    expect(made.exitCode, made.stderr).toBe(0);
    const port = await freePort();
    const daemon = execa(process.execPath, [CLI, 'daemon'], {
      env: { ...env, PATH: process.env.PATH ?? '', BACKUP_FAKE_NOW: at(26, 2), HEALTHCHECK_PORT: String(port), HEALTHCHECK_BIND: '127.0.0.1', STATUS_PASSWORD_FILE: join(work, 'status-password'), VALIDATE_ON_START: 'false' },
      extendEnv: false,
      reject: false,
      all: true,
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      await until('the status endpoint', async () => ((await fetch(`${base}/healthz`).catch(() => undefined)) === undefined ? undefined : true));
      const auth = { authorization: `Basic ${Buffer.from(`anyone:${PASSWORD}`).toString('base64')}` };
      expect((await fetch(`${base}/`)).status).toBe(401);
      expect((await fetch(`${base}/?format=json`, { headers: { authorization: `Basic ${Buffer.from('x:wrong').toString('base64')}` } })).status).toBe(401);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);

      const response = await fetch(`${base}/?format=json`, { headers: auth });
      expect(response.status).toBe(200);
      const report: StatusReport = statusReport.parse(await response.json());
      expect(report.health.healthy).toBe(true);
      expect(report.runs.map((r) => r.status)).toEqual([...Array(7).fill('ok'), 'failed', ...Array(6).fill('ok')]);
      expect(report.runs.find((r) => r.runId === runIdAt(16))?.drill).toMatchObject({ ok: true });
      expect(report.drops.map((d) => [d.runId, d.previousRunId, d.what])).toEqual([[runIdAt(26), runIdAt(24), 'size'], [runIdAt(26), runIdAt(24), 'rows']]);
      expect(report.lastError?.message).toMatch(/127\.0\.0\.1/);
      expect(report.disk.freeBytes).toBeGreaterThan(0);
      expect(report.runs.at(-1)?.targets).toEqual([{ url: expect.stringMatching(/^s3:\/\//), state: 'complete' }]);
      expect(JSON.stringify(report)).not.toContain(PASSWORD);
      expect(JSON.stringify(report)).not.toContain(S3_SECRET);
      expect(JSON.stringify(report)).not.toContain('status-password');

      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^backup_sidecar_size_drop\{source="app",kind="postgres"\} 1$/m);
      expect(metrics).toMatch(/^backup_sidecar_size_drop\{source="media",kind="media"\} 0$/m);
      expect(metrics).toMatch(/^backup_sidecar_volume_free_bytes \d+$/m);
      const lint = await promtool(['check', 'metrics'], metrics);
      expect(lint.exitCode, lint.all).toBe(0);

      const view = await viewInChromium(`${base}/`, { headers: auth, screenshot: join(ROOT, '.tmp/screenshots/status-page.png') });
      expect(view.errors).toEqual([]);
      expect(view.status).toBe(200);
      expect(view.title).toBe('OK: backup-sidecar');
      expect(view.text).toContain('Backups are running, but one needs a look');
      expect(view.text).toMatch(new RegExp(`Run ${runIdAt(26)}: drop of postgres app`));
      expect(view.text).toContain(`backup-sidecar ack ${runIdAt(26)}`);
      expect(view.text).toMatch(/Last restore drill\s+passed at/);
      expect(view.text).toMatch(/Last error\s+2026-11-15T/);
      expect(view.text).toMatch(/Newest run per tier[\s\S]*daily/);
      expect(view.text).toContain('Artifact size per source');
      expect(view.text).toContain('Last 14 runs');
      expect(view.text).toMatch(/Free space\s+.* free, above DISK_FREE_MIN/);
      expect((await readFile(join(ROOT, '.tmp/screenshots/status-page.png'))).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      daemon.kill('SIGTERM');
    }
    const result = await daemon;
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).not.toContain(PASSWORD);
    expect(result.all).toMatch(/"bind":"127\.0\.0\.1","auth":"basic auth on \/"/);
  }, 120_000);

  it('the documented JSON Schema of ?format=json is the one the code checks against', async () => {
    const documented = JSON.parse(await readFile(join(ROOT, 'examples/monitoring/status.schema.json'), 'utf8'));
    expect(documented).toEqual(z.toJSONSchema(statusReport));
  });

  it('a HEALTHCHECK_BIND that is not an address of this host: the daemon exits 1 with one line naming it', async () => {
    const result = await execa(process.execPath, [CLI, 'daemon'], { env: { ...env, PATH: process.env.PATH ?? '', HEALTHCHECK_PORT: String(await freePort()), HEALTHCHECK_BIND: '192.0.2.1', VALIDATE_ON_START: 'false' }, extendEnv: false, reject: false, timeout: 30_000 });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/cannot listen on 192\.0\.2\.1 port \d+ \(EADDRNOTAVAIL\): check HEALTHCHECK_BIND/);
  });

  it('HEALTHCHECK_BIND and SIZE_DROP_WARN: a bad value is one line naming the variable', async () => {
    for (const [name, value, expected] of [
      ['HEALTHCHECK_BIND', 'localhost:80', 'expected an IP address'],
      ['SIZE_DROP_WARN', '150%', 'expected a percentage from 0% to 100%'],
      ['HISTORY_MAX', '3', 'expected a whole number from 10'],
    ] as const) {
      const result = await runCli(['status'], { ...env, [name]: value });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`${name}.*${expected}`));
    }
  });
});
