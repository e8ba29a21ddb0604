import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, filesBelow, runCli, tempDir } from './support/cli.ts';
import { PG17_SERVER_BIN, startPostgres, type TestServer } from './support/postgres-server.ts';
import { wrapperBin } from './support/pg-wrappers.ts';

let pg: TestServer;
let work: string;
let env: Record<string, string>;

async function tierFiles(): Promise<string[]> {
  return (await filesBelow(env.BACKUP_DIR!)).filter((f) => !f.startsWith('.lock') && f !== '.status.json' && f !== '.history.jsonl');
}

beforeAll(async () => {
  pg = await startPostgres({ password: 'Very-S3cret-Passw0rd' });
  await pg.sql('postgres', 'CREATE DATABASE app;');
  // About 2 MB of incompressible rows: enough to overflow a small disk and to be cut mid-way.
  await pg.sql('app', `CREATE TABLE blobs (id int, data text); INSERT INTO blobs SELECT i, string_agg(md5(random()::text), '') FROM generate_series(1, 1000) i, generate_series(1, 64) j GROUP BY i;`);
  work = await tempDir('fail');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/file.txt'), 'hello');
  env = { ...pg.env, BACKUP_DIR: join(work, 'backups'), POSTGRES_DB: 'app', MEDIA_PATHS: `m:${join(work, 'media')}` };
});

afterAll(async () => {
  await pg?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('unhappy paths leave nothing half-written', () => {
  it('database down: exit 1, one clear line, no run', async () => {
    await pg.halt();
    try {
      const r = await runCli(['backup'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`backup-sidecar: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${pg.port} \\(user postgres, database app\\): .*Connection refused`));
      expect(await tierFiles()).toEqual([]);
    } finally {
      await pg.start();
    }
  });

  it('wrong password: exit 1, names the cause, never the password', async () => {
    const r = await runCli(['backup'], { ...env, POSTGRES_PASSWORD: 'wrong-password-123' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/password authentication failed for user "postgres"/);
    expect(r.stderr).not.toContain('wrong-password-123');
    expect(await tierFiles()).toEqual([]);
  });

  it('pg_dump dying mid-way: exit 1 with its error, partial run removed', async () => {
    const bin = await wrapperBin(join(work, 'dying-bin'), { dieAfterBytes: 50_000 });
    const r = await runCli(['backup'], { ...env, PG_BIN_DIR: bin });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/backup-sidecar: pg_dump of database app failed: simulated crash/);
    expect(await tierFiles()).toEqual([]);
  });

  it('a media folder that is not there fails the run', async () => {
    const r = await runCli(['backup'], { ...env, MEDIA_PATHS: '/nonexistent/uploads' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/media folder uploads: \/nonexistent\/uploads does not exist; mount it or fix MEDIA_PATHS/);
    expect(await tierFiles()).toEqual([]);
  });

  it('a full disk: exit 1 saying so, nothing left in the volume', async () => {
    // A 256 KiB tmpfs as BACKUP_DIR, in a private mount namespace (works as root and as a normal user).
    const script = `mount -t tmpfs -o size=256k tmpfs "$BACKUP_DIR" && "$NODE" "$CLI" backup; code=$?; echo "FILES:"; find "$BACKUP_DIR" -type f; exit $code`;
    await mkdir(env.BACKUP_DIR!, { recursive: true });
    const r = await execa('unshare', ['-rm', 'sh', '-c', script], {
      env: { ...env, NODE: process.execPath, CLI, PATH: process.env.PATH },
      extendEnv: false,
      reject: false,
    });
    if (r.stderr.includes('unshare failed') || r.stderr.includes('mount:')) throw new Error(`cannot make a small tmpfs for the disk-full test here: ${r.stderr}`);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/backup-sidecar: disk full while writing app\.dump\.zst: free space in the volume/);
    expect(r.stdout.split('FILES:')[1]!.trim().split('\n').filter((f) => f !== '' && !f.includes('/.lock') && !f.endsWith('/.status.json') && !f.endsWith('/.history.jsonl'))).toEqual([]);
  });

  it('leftovers of a killed run are removed by the next run', async () => {
    const bin = await wrapperBin(join(work, 'slow-bin'));
    // Kill the CLI with SIGKILL while pg_dump streams: no cleanup code can run.
    const child = execa(process.execPath, [CLI, 'backup'], { env: { ...env, PG_BIN_DIR: bin, PATH: process.env.PATH }, extendEnv: false, reject: false });
    for (let i = 0; i < 200; i++) {
      const partial = await readdir(join(env.BACKUP_DIR!, '.partial')).catch(() => []);
      if (partial.length > 0 && (await filesBelow(join(env.BACKUP_DIR!, '.partial'))).length > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await child;
    for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) expect(await filesBelow(join(env.BACKUP_DIR!, tier))).toEqual([]);
    expect((await filesBelow(join(env.BACKUP_DIR!, '.partial'))).length).toBeGreaterThan(0);
    // The lock of the dead process goes stale; the next run takes over and cleans up.
    await rm(join(env.BACKUP_DIR!, '.lock'), { recursive: true, force: true });
    const r = await runCli(['backup'], env);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/removing the leftovers of an interrupted run/);
    expect(await readdir(join(env.BACKUP_DIR!, '.partial'))).toEqual([]);
  });

  it('never puts the password in argv, logs, manifests or file names', async () => {
    const bin = await wrapperBin(join(work, 'spy-bin'));
    const r = await runCli(['backup'], { ...env, PG_BIN_DIR: bin, LOG_LEVEL: 'trace' });
    expect(r.exitCode).toBe(0);
    const runDir = r.stdout.trim().split(' ')[0]!;
    const argv = await readFile(join(bin, 'argv.log'), 'utf8');
    expect(argv).toMatch(/pg_dump --format=custom --no-password --snapshot=/);
    for (const text of [argv, r.stdout, r.stderr, await readFile(join(runDir, 'manifest.json'), 'utf8'), (await filesBelow(env.BACKUP_DIR!)).join('\n')]) {
      expect(text).not.toContain(pg.password);
    }
    const restore = await runCli(['restore', 'latest', '--yes', '--target-db', 'spy_copy', '--target-dir', join(work, 'spy-media')], { ...env, PG_BIN_DIR: bin, LOG_LEVEL: 'trace' });
    expect(restore.exitCode).toBe(0);
    expect(restore.stderr + (await readFile(join(bin, 'argv.log'), 'utf8'))).not.toContain(pg.password);
  });
});

describe('PostgreSQL client choice', () => {
  let pg17: TestServer;
  beforeAll(async () => {
    pg17 = await startPostgres({ serverBin: PG17_SERVER_BIN });
  });
  afterAll(async () => pg17?.stop());

  it('refuses a server newer than every installed client, naming both', async () => {
    const { PG_BIN_DIR: _, ...noBinDir } = pg17.env;
    const r = await runCli(['backup'], { ...noBinDir, POSTGRES_DB: 'postgres', BACKUP_DIR: join(work, 'b17') });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/no PostgreSQL client can dump server 17\.\d+: clients found: 15\.\d+ \(\/usr\/lib\/postgresql\/15\/bin\); install the client of major 17 or newer/);
    expect((await filesBelow(join(work, 'b17'))).filter((f) => f !== '.status.json' && f !== '.history.jsonl')).toEqual([]);
  });
});
