import { createServer, type Server } from 'node:http';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from './support/cli.ts';
import { freePort } from './support/postgres-server.ts';

/** Notifications that reach people: each WEBHOOK_FORMAT, retries, and healthchecks.io, against a local receiver. */
interface Received {
  path: string;
  type: string;
  title: string | undefined;
  body: string;
}
let receiver: Server;
let base: string;
let work: string;
const received: Received[] = [];
/** Answers for the next requests (503 to test retries); 200 when empty. */
const answers: number[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', title: req.headers.title as string | undefined, body });
      res.writeHead(answers.shift() ?? 200).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${port}`;
  work = await tempDir('webhooks');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/a.txt'), 'a');
});

afterAll(async () => {
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await rm(work, { recursive: true, force: true });
});

const backup = (env: Record<string, string>) => runCli(['backup'], { MEDIA_PATHS: `media:${join(work, 'media')}`, BACKUP_DIR: join(work, 'backups'), ...env });

describe('webhooks', () => {
  it.each([
    ['json', 'application/json', (b: string) => expect(JSON.parse(b)).toMatchObject({ status: 'ok', event: 'backup', offsite: 'off', targets: [] })],
    ['slack', 'application/json', (b: string) => expect(JSON.parse(b).text).toMatch(/^backup-sidecar: backup of run \d{8}T\d{6}Z ok, \d+ B$/)],
    ['discord', 'application/json', (b: string) => expect(JSON.parse(b).content).toMatch(/^backup-sidecar: backup of run \S+ ok/)],
    ['ntfy', 'text/plain', (b: string) => expect(b).toMatch(/^backup-sidecar: backup of run \S+ ok/)],
    ['text', 'text/plain', (b: string) => expect(b).toMatch(/^backup-sidecar: backup of run \S+ ok/)],
  ])('WEBHOOK_FORMAT=%s', async (format, type, check) => {
    received.length = 0;
    const r = await backup({ WEBHOOK_URL: `${base}/all`, WEBHOOK_FORMAT: format });
    expect(r.exitCode).toBe(0);
    expect(received).toHaveLength(1);
    expect(received[0]!.type).toBe(type);
    if (format === 'ntfy') expect(received[0]!.title).toBe('backup-sidecar');
    check(received[0]!.body);
  });

  it('a failing receiver is retried with backoff (503, 503, then 200): delivered once, the job still ok', async () => {
    received.length = 0;
    answers.push(503, 503);
    const r = await backup({ WEBHOOK_URL: `${base}/retry` });
    expect(r.exitCode).toBe(0);
    expect(received.map((x) => x.path)).toEqual(['/retry', '/retry', '/retry']);
  });

  it('HEALTHCHECKS_URL: /start, then the check itself on success, /fail with the reason otherwise', async () => {
    received.length = 0;
    expect((await backup({ HEALTHCHECKS_URL: `${base}/hc/uuid` })).exitCode).toBe(0);
    expect(received.map((x) => x.path)).toEqual(['/hc/uuid/start', '/hc/uuid']);
    received.length = 0;
    const failed = await backup({ HEALTHCHECKS_URL: `${base}/hc/uuid`, MEDIA_PATHS: `media:${join(work, 'missing')}` });
    expect(failed.exitCode).toBe(1);
    expect(received.map((x) => x.path)).toEqual(['/hc/uuid/start', '/hc/uuid/fail']);
    expect(received[1]!.body).toMatch(/^backup-sidecar: backup FAILED: .*missing/);
  });

  it('a bad WEBHOOK_FORMAT is one line, exit 2', async () => {
    const r = await backup({ WEBHOOK_FORMAT: 'teams' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/WEBHOOK_FORMAT="teams": expected json, slack, discord, ntfy or text/);
  });
});
