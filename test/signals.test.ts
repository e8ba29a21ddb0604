import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/manifest.ts';
import { CLI, readJson, runCli, tempDir, until } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

/**
 * Signals and stalls, each at an exact point: a wrapper that holds pg_dump or pg_restore until told to go
 * on, a proxy that stops forwarding S3 traffic after N bytes or holds chosen requests. Whatever the point,
 * a one-off command stops its children, cleans up and exits 1; the daemon exits 0; nothing half-written
 * is left and every stall ends.
 */
let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
const MIB = 1024 * 1024;

type Child = ResultPromise<{ env: Record<string, string>; extendEnv: false; reject: false; all: true }>;

function start(args: string[], extra: Record<string, string> = {}): Child {
  return execa(process.execPath, [CLI, ...args], { env: { ...env, ...extra }, extendEnv: false, reject: false, all: true });
}

const runsIn = async (dir: string) => {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly', 'pre-restore']) for (const id of await readdir(join(dir, tier)).catch(() => [])) out.push(`${tier}/${id}`);
  return out.sort();
};
const partial = (dir: string) => readdir(join(dir, '.partial')).catch(() => [] as string[]);
const sessions = () => pg.sql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'backup-sidecar';");
const children = async () => (await execa('pgrep', ['-f', `${PG_WRAPPED}`], { reject: false })).stdout.trim();
let PG_WRAPPED = '';

/** A wrapper folder that holds `tool` where its arguments contain `when`; returns it and its marker. */
async function holding(name: string, tool: string, when: string): Promise<{ bin: string; held: string }> {
  const bin = await wrapperBin(join(work, name), { hold: { tool, when } });
  return { bin, held: join(bin, `${tool}.held`) };
}
const exists = (path: string) => until(path, async () => ((await readdir(join(path, '..'))).includes(path.split('/').pop()!) ? true : undefined));

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, md5(i::text) FROM generate_series(1, 2000) i;');
  work = await tempDir('signals');
  await mkdir(join(work, 'uploads'));
  // Incompressible and several parts long, so that an upload is still going when the proxy stalls it.
  await writeFile(join(work, 'uploads/big.bin'), randomBytes(12 * MIB));
  PG_WRAPPED = work;
  env = { PATH: process.env.PATH!, ...pg.env, POSTGRES_DB: 'app', BACKUP_DIR: join(work, 'backups'), LOG_LEVEL: 'info' };
});

afterAll(async () => {
  // A held wrapper of a failed test would wait forever.
  await execa('pkill', ['-f', work], { reject: false });
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('a one-off command stopped by a signal cleans up and fails (exit 1)', () => {
  it('backup: SIGTERM while pg_dump runs with the row-count session open', async () => {
    const dir = join(work, 'backup-term');
    const { bin, held } = await holding('hold-dump', 'pg_dump', '--snapshot');
    const child = start(['backup'], { BACKUP_DIR: dir, PG_BIN_DIR: bin });
    await exists(held);
    expect(Number(await sessions())).toBeGreaterThan(0);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/SIGTERM: stopping, cleaning up/);
    expect(result.stderr.split('\n').filter((l) => l.startsWith('backup-sidecar:'))).toEqual([expect.stringMatching(/stopped by SIGTERM/)]);
    expect(await partial(dir)).toEqual([]);
    expect(await runsIn(dir)).toEqual([]);
    expect(await sessions()).toBe('0');
    expect(await children()).toBe('');
    // The lock was released: the next backup runs at once.
    expect((await runCli(['backup'], { ...env, BACKUP_DIR: dir, LOCK_WAIT: '1s' })).exitCode).toBe(0);
  });

  it('backup: SIGINT during the pre hook stops the hook too', async () => {
    const dir = join(work, 'backup-int');
    const marker = join(work, 'int-hook');
    const child = start(['backup'], { BACKUP_DIR: dir, BACKUP_PRE_COMMAND: `touch ${marker}; sleep 60` });
    await exists(marker);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/BACKUP_PRE_COMMAND failed \(stopped: stopped by SIGINT/);
    expect(await runsIn(dir)).toEqual([]);
    expect((await execa('pgrep', ['-f', `touch ${marker}; sleep 60`], { reject: false })).stdout).toBe('');
  });

  it('restore: SIGTERM during pg_restore into the scratch database; the database keeps its data, no scratch database is left', async () => {
    const dir = join(work, 'restore-term');
    expect((await runCli(['backup'], { ...env, BACKUP_DIR: dir })).exitCode).toBe(0);
    await pg.sql('app', 'INSERT INTO notes VALUES (99999, $$after$$);');
    const { bin, held } = await holding('hold-restore', 'pg_restore', '--jobs');
    const child = start(['restore', 'latest', '--yes'], { BACKUP_DIR: dir, PG_BIN_DIR: bin });
    await exists(held);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/stopped by SIGTERM/);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('2001');
    expect(await pg.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_\\_%';")).toBe('0');
    expect(await partial(dir)).toEqual([]);
    expect(await children()).toBe('');
    await pg.sql('app', 'DELETE FROM notes WHERE id = 99999;');
  });

  it('verify: SIGTERM while pg_restore reads the dump', async () => {
    const dir = join(work, 'backup-term'); // has a run
    const { bin, held } = await holding('hold-verify', 'pg_restore', '--list');
    const child = start(['verify'], { BACKUP_DIR: dir, PG_BIN_DIR: bin });
    await exists(held);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/backup-sidecar: stopped: stopped by SIGTERM/);
    expect(await children()).toBe('');
  });

  it('a second signal ends at once, even while the cleanup waits (BACKUP_POST_COMMAND is never cut short by the first)', async () => {
    const dir = join(work, 'backup-twice');
    const marker = join(work, 'post-hook');
    const { bin, held } = await holding('hold-twice', 'pg_dump', '--snapshot');
    const child = start(['backup'], { BACKUP_DIR: dir, PG_BIN_DIR: bin, BACKUP_POST_COMMAND: `touch ${marker}; sleep 60` });
    await exists(held);
    child.kill('SIGTERM');
    await exists(marker);
    const began = Date.now();
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(Date.now() - began).toBeLessThan(3_000);
    expect(result.all).toMatch(/SIGTERM again: stopping at once/);
  });
});

describe('the daemon stopped at several points of a run exits 0 and leaves nothing half-written', () => {
  it('during pg_dump with the row-count session open', async () => {
    const dir = join(work, 'daemon-dump');
    const { bin, held } = await holding('hold-daemon-dump', 'pg_dump', '--snapshot');
    const child = start(['daemon'], { BACKUP_DIR: dir, PG_BIN_DIR: bin, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', SHUTDOWN_TIMEOUT: '1s' });
    await exists(held);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.all).toMatch(/shutdown timeout: aborting the running backup/);
    expect(await partial(dir)).toEqual([]);
    expect(await runsIn(dir)).toEqual([]);
    expect(await sessions()).toBe('0');
  });

  it('during an S3 upload that has stalled: SHUTDOWN_TIMEOUT still ends it, no run looks complete in the bucket', async () => {
    const dir = join(work, 'daemon-upload');
    const prefix = 'daemon-upload';
    s3.requests.length = 0;
    s3.stallAfter(6 * MIB);
    try {
      const child = start(['daemon'], { ...s3.env, S3_PREFIX: prefix, S3_TIMEOUT: '60s', BACKUP_DIR: dir, MEDIA_PATHS: `uploads:${join(work, 'uploads')}`, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', SHUTDOWN_TIMEOUT: '1s' });
      await until('the upload to stall', async () => (s3.requests.some((q) => q.status === -2) ? true : undefined));
      const began = Date.now();
      child.kill('SIGTERM');
      const result = await child;
      expect(result.exitCode).toBe(0);
      expect(Date.now() - began).toBeLessThan(10_000);
      expect(await partial(dir)).toEqual([]);
      // Aborted, or (the upload was all that was left) complete locally and marked not offsite.
      for (const run of await runsIn(dir)) expect((await readJson<Manifest>(join(dir, run, 'manifest.json'))).offsite?.state).toBe('failed');
    } finally {
      s3.unstall();
    }
    expect((await s3.keys()).filter((k) => k.startsWith(`${prefix}/`) && k.endsWith('manifest.json'))).toEqual([]);
  });

  it('during the offsite prune (a DeleteObjects that never answers): the run itself is complete, exit 0', async () => {
    const dir = join(work, 'daemon-prune');
    const prefix = 'daemon-prune';
    const local = { ...s3.env, S3_PREFIX: prefix, S3_TIMEOUT: '3s', S3_MAX_ATTEMPTS: '1', BACKUP_DIR: dir };
    // An old run in the bucket, which the daemon's run then prunes.
    expect((await runCli(['backup'], { ...env, ...local, BACKUP_FAKE_NOW: '2020-01-01T00:00:00Z' })).exitCode).toBe(0);
    await rm(dir, { recursive: true });
    s3.requests.length = 0;
    s3.stallWhen((method, url) => method === 'POST' && url.includes('delete'));
    try {
      const child = start(['daemon'], { ...local, SCHEDULE: '0 0 1 1 *', BACKUP_ON_START: 'true', SHUTDOWN_TIMEOUT: '1s' });
      await until('the prune to be held', async () => (s3.requests.some((q) => q.status === -2) ? true : undefined));
      child.kill('SIGTERM');
      const result = await child;
      expect(result.exitCode).toBe(0);
      const runs = await runsIn(dir);
      expect(runs).toHaveLength(1);
      expect((await readJson<Manifest>(join(dir, runs[0]!, 'manifest.json'))).offsite?.state).toBe('complete');
      expect(await partial(dir)).toEqual([]);
    } finally {
      s3.unstall();
    }
  });
});

describe('a stalled S3 connection ends after S3_TIMEOUT of silence', () => {
  it('upload: the local run completes and is marked failed, exit 1, in about attempts × S3_TIMEOUT; the lock is free', async () => {
    const dir = join(work, 'stall-up');
    const local = { ...s3.env, S3_PREFIX: 'stall-up', S3_TIMEOUT: '2s', S3_MAX_ATTEMPTS: '2', BACKUP_DIR: dir, MEDIA_PATHS: `uploads:${join(work, 'uploads')}` };
    s3.stallAfter(6 * MIB);
    const began = Date.now();
    let result;
    try {
      result = await runCli(['backup'], { ...env, ...local });
    } finally {
      s3.unstall();
    }
    expect(Date.now() - began).toBeLessThan(30_000);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/went silent: no byte moved for 2 s \(S3_TIMEOUT\)/);
    const runs = await runsIn(dir);
    expect(runs).toHaveLength(1);
    expect((await readJson<Manifest>(join(dir, runs[0]!, 'manifest.json'))).offsite?.state).toBe('failed');
    // Not stalled any more: the next run ships both.
    const next = await runCli(['backup'], { ...env, ...local, LOCK_WAIT: '1s' });
    expect(next.exitCode).toBe(0);
  });

  it('download: a restore from S3 whose object stalls fails in one line, nothing restored, nothing left in .partial', async () => {
    const dir = join(work, 'stall-down');
    const local = { ...s3.env, S3_PREFIX: 'stall-down', S3_TIMEOUT: '2s', S3_MAX_ATTEMPTS: '2', BACKUP_DIR: dir, MEDIA_PATHS: `uploads:${join(work, 'uploads')}` };
    expect((await runCli(['backup'], { ...env, ...local })).exitCode).toBe(0);
    const [run] = await runsIn(dir);
    await rm(join(dir, run!), { recursive: true });
    s3.stallAfter(3 * MIB, 'down');
    let result;
    try {
      const url = `s3://${s3.bucket}/stall-down/${run!}/uploads.tar.gz`;
      result = await runCli(['restore', url, '--yes', '--target-dir', join(work, 'restored-uploads')], { ...env, ...local });
    } finally {
      s3.unstall();
    }
    expect(result.exitCode).toBe(1);
    expect(result.stderr.split('\n').filter((l) => l.startsWith('backup-sidecar:'))).toHaveLength(1);
    expect(result.stderr).toMatch(/went silent|S3_TIMEOUT/);
    expect(await readdir(join(work, 'restored-uploads')).catch(() => [])).toEqual([]);
    expect(await partial(dir)).toEqual([]);
  });
});

describe('progress', () => {
  it('a long dump logs bytes, rate and time elapsed every LOG_PROGRESS_EVERY; the final line has size, time and rate', async () => {
    const bin = await wrapperBin(join(work, 'slow-progress'), { slowSeconds: 3 });
    const r = await runCli(['backup'], { ...env, BACKUP_DIR: join(work, 'progress'), PG_BIN_DIR: bin, LOG_PROGRESS_EVERY: '500ms' });
    expect(r.exitCode).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.includes('"what":"postgres app"'));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.at(-1)).toMatch(/"msg":"postgres app: [\d.]+ (B|KiB|MiB) in \d+ s \([\d.]+ (B|KiB|MiB)\/s\)"/);
    expect(r.stderr).toMatch(/"file":"app.dump.zst","bytes":\d+,"ms":\d+,"rate":"[\d.]+ (B|KiB|MiB)\/s"/);
  });

  it('a restore and a drill follow pg_restore (bytes of the total, rate, time) in the log, and as a live line on a terminal', async () => {
    const dir = join(work, 'progress-restore');
    expect((await runCli(['backup'], { ...env, BACKUP_DIR: dir })).exitCode).toBe(0);
    for (const [args, what] of [
      [['restore', 'latest', '--yes', '--no-safety-backup'], 'pg_restore app.dump.zst'],
      [['verify', '--restore', 'latest'], 'drill: pg_restore app.dump.zst'],
    ] as const) {
      const { bin, held } = await holding(`hold-progress-${args[0]}-${args.length}`, 'pg_restore', '--exit-on-error');
      const child = start([...args], { BACKUP_DIR: dir, PG_BIN_DIR: bin, LOG_PROGRESS_EVERY: '200ms' });
      await exists(held);
      await new Promise((r) => setTimeout(r, 900));
      await writeFile(join(bin, 'go'), '');
      const r = await child;
      expect(r.exitCode, r.all).toBe(0);
      const lines = r.all!.split('\n').filter((l) => l.includes(`"what":"${what}"`));
      expect(lines.length, r.all).toBeGreaterThanOrEqual(2);
      expect(lines[0]).toMatch(new RegExp(`"msg":"${what}: [\\d.]+ (B|KiB|MiB) of [\\d.]+ (KiB|MiB) \\(\\d+%\\) in \\d+ s \\([\\d.]+ (B|KiB|MiB)/s\\)"`));
    }
    // On a terminal (script gives the CLI one), with pretty logs: a live line, no periodic log lines.
    const { bin, held } = await holding('hold-progress-tty', 'pg_restore', '--exit-on-error');
    const command = `"${process.execPath}" "${CLI}" restore latest --yes --no-safety-backup`;
    const tty = execa('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...env, BACKUP_DIR: dir, PG_BIN_DIR: bin, LOG_PROGRESS_EVERY: '200ms' }, extendEnv: false, reject: false });
    await exists(held);
    await new Promise((r) => setTimeout(r, 900));
    await writeFile(join(bin, 'go'), '');
    const r = await tty;
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/pg_restore app\.dump\.zst: [\d.]+ (B|KiB|MiB) \d+% of [\d.]+ (KiB|MiB), [\d.]+ (B|KiB|MiB)\/s, \d+ s/);
    expect(r.stdout).not.toMatch(/"what":/);
  });
});
