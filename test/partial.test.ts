import { createServer, type Server } from 'node:http';
import { readdir, rm } from 'node:fs/promises';
import { execa } from 'execa';
import type { Manifest } from '../src/manifest.ts';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, readJson, runCli, tempDir, until } from './support/cli.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

/** A run whose offsite copy failed is a failure to every observer: exit code, webhooks, healthcheck. */
let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
let hooks: Server;
const received: { path: string; status: string; offsite: string }[] = [];

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE t (x int); INSERT INTO t VALUES (1);');
  work = await tempDir('partial');
  const port = await freePort();
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const json = JSON.parse(body) as { status: string; offsite: string };
      received.push({ path: req.url ?? '', status: json.status, offsite: json.offsite });
      res.end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(port, '127.0.0.1', resolve));
  env = {
    ...pg.env,
    ...s3.env,
    BACKUP_DIR: join(work, 'backups'),
    POSTGRES_DB: 'app',
    WEBHOOK_URL: `http://127.0.0.1:${port}/all`,
    WEBHOOK_ERROR_URL: `http://127.0.0.1:${port}/errors`,
  };
});

afterAll(async () => {
  await new Promise<void>((resolve) => hooks?.close(() => resolve()));
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('a run that is not offsite is a failure to every observer', () => {
  it('S3 down: exit 1, both webhooks say "partial", healthcheck is unhealthy naming the store; HEALTHCHECK_REQUIRE_OFFSITE=false relaxes only that', async () => {
    await s3.down();
    const r = await runCli(['backup'], env);
    expect(r.exitCode).toBe(1);
    // The two webhooks are called at once: compare in a fixed order.
    expect([...received].sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: '/all', status: 'partial', offsite: 'failed' },
      { path: '/errors', status: 'partial', offsite: 'failed' },
    ]);
    const health = await runCli(['healthcheck'], env);
    expect(health.exitCode).toBe(1);
    expect(health.stderr).toMatch(/^unhealthy: the newest successful backup, \S+, is not in s3:\/\/backups \(failed: .*\); the next run uploads it$/m);
    expect((await runCli(['status'], env)).stdout).toMatch(/^health: FAILING: the newest successful backup, \S+, is not in s3:\/\/backups/m);
    expect((await runCli(['healthcheck'], { ...env, HEALTHCHECK_REQUIRE_OFFSITE: 'false' })).exitCode).toBe(0);
  });

  it('S3 back: the next run uploads both, the webhook says "ok", the error webhook is not called, healthcheck is healthy', async () => {
    await s3.up();
    received.length = 0;
    const r = await runCli(['backup'], env);
    expect(r.exitCode).toBe(0);
    expect(received).toEqual([{ path: '/all', status: 'ok', offsite: 'complete' }]);
    expect((await runCli(['healthcheck'], env)).exitCode).toBe(0);
    expect((await s3.keys()).filter((k) => k.endsWith('/manifest.json'))).toHaveLength(2);
  });

  it('killed (-9) after the manifest reached S3 but before the volume knew: the next run marks it complete, uploads nothing of it again', async () => {
    const dir = join(work, 'reconcile');
    s3.requests.length = 0;
    s3.withholdAnswerWhen((method, url) => method === 'PUT' && url.includes('/manifest.json'));
    const child = execa(process.execPath, [CLI, 'backup'], { env: { PATH: process.env.PATH!, ...env, BACKUP_DIR: dir, S3_PREFIX: 'reconcile' }, extendEnv: false, reject: false });
    try {
      await until('the manifest to be stored', async () => (s3.requests.some((q) => q.status === -3) ? true : undefined));
      child.kill('SIGKILL');
      await child;
    } finally {
      s3.unstall();
    }
    await rm(join(dir, '.lock'), { recursive: true, force: true });
    const [run] = await readdir(join(dir, 'yearly'));
    const manifest = () => readJson<Manifest>(join(dir, 'yearly', run!, 'manifest.json'));
    expect((await manifest()).offsite?.state).toBe('pending');
    expect((await runCli(['healthcheck'], { ...env, BACKUP_DIR: dir, S3_PREFIX: 'reconcile' })).exitCode).toBe(1);
    s3.requests.length = 0;
    const next = await runCli(['backup'], { ...env, BACKUP_DIR: dir, S3_PREFIX: 'reconcile' });
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/run found complete offsite after an interruption: marked complete/);
    expect((await manifest()).offsite?.state).toBe('complete');
    expect(s3.requests.filter((q) => q.method === 'PUT' && q.url.includes(run!))).toEqual([]);
  });
});
