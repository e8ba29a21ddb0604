import { link, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, readJson, tempDir } from './support/cli.ts';
import { startPostgres, type TestServer } from './support/postgres-server.ts';

// Restore drills against real PostgreSQL servers: `verify --restore` proves a run restorable without
// touching the real database or media folder.
let pg: TestServer;
let other: TestServer;
let work: string;
let env: Record<string, string>;
let runDir: string;

interface Report {
  runId: string;
  ok: boolean;
  checks: { check: string; ok: boolean; detail: string }[];
}

/** What a drill must never change: the real database (its oid changes on any swap; its data) and the folder. */
async function realState(): Promise<string> {
  const db = await pg.sql('postgres', "SELECT oid FROM pg_database WHERE datname = 'app';");
  const data = await pg.sql('app', 'SELECT md5(string_agg(x::text, \',\' ORDER BY x)) FROM t; SELECT count(*) FROM notes;');
  const files = (await readdir(join(work, 'media'), { recursive: true })).sort();
  const times = await Promise.all(files.map(async (f) => `${f}@${(await stat(join(work, 'media', f))).mtimeMs}`));
  return [db, data, ...times].join('\n');
}

async function drillDatabases(server: TestServer): Promise<string> {
  return server.sql('postgres', "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'backup\\_sidecar\\_drill\\_%';");
}

async function withManifest(edit: (m: Record<string, unknown> & { artifacts: Record<string, unknown>[] }) => void, work: () => Promise<void>): Promise<void> {
  const path = join(runDir, 'manifest.json');
  const original = await readFile(path, 'utf8');
  const manifest = JSON.parse(original);
  edit(manifest);
  await writeFile(path, JSON.stringify(manifest));
  try {
    await work();
  } finally {
    await writeFile(path, original);
  }
}

beforeAll(async () => {
  [pg, other] = await Promise.all([startPostgres(), startPostgres({ password: 'other-Secr3t' })]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', "CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5000); CREATE TABLE notes (body text); INSERT INTO notes VALUES ('a'), ('b');");
  work = await tempDir('drill');
  await mkdir(join(work, 'media/2026/11'), { recursive: true });
  await writeFile(join(work, 'media/2026/11/a.jpg'), 'x'.repeat(1000));
  await writeFile(join(work, 'media/b.txt'), 'hello');
  await link(join(work, 'media/b.txt'), join(work, 'media/b-hardlink.txt'));
  env = { ...pg.env, POSTGRES_DB: 'app', MEDIA_PATHS: `uploads:${join(work, 'media')}`, BACKUP_DIR: join(work, 'backups') };
  const backup = await runCli(['backup'], env);
  expect(backup.exitCode, backup.stderr).toBe(0);
  const tier = (await readdir(env.BACKUP_DIR!)).find((d) => ['daily', 'weekly', 'monthly', 'yearly'].includes(d))!;
  runDir = join(env.BACKUP_DIR!, tier, (await readdir(join(env.BACKUP_DIR!, tier)))[0]!);
});

afterAll(async () => {
  await Promise.all([pg?.stop(), other?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('verify --restore (restore drills)', () => {
  it('records files and bytes of each tarball in the manifest (a hard link counted once)', async () => {
    const manifest = await readJson<{ artifacts: { kind: string; entries: number; files: number; bytes: number }[] }>(join(runDir, 'manifest.json'));
    expect(manifest.artifacts.find((a) => a.kind === 'media')).toMatchObject({ entries: 5, files: 3, bytes: 1005 });
  });

  it('passes: restores into a scratch database, checks rows and VERIFY_SQL, unpacks and measures; writes verify.json; touches nothing real', async () => {
    const before = await realState();
    const r = await runCli(['verify', '--restore', 'latest'], { ...env, VERIFY_SQL: 'SELECT count(*) = 5000 FROM t' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok {4}restore app\.dump\.zst: 2 tables and 5002 rows match the manifest$/m);
    expect(r.stdout).toMatch(/^ok {4}VERIFY_SQL on app: returned true$/m);
    expect(r.stdout).toMatch(/^ok {4}unpack uploads\.tar\.gz: 5 entries, 3 files, 1005 bytes, as in the manifest$/m);
    expect(r.stdout).toMatch(/restore drill passed/);
    const report = await readJson<Report>(join(runDir, 'verify.json'));
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.check)).toEqual(['sha256', `connect to 127.0.0.1:${pg.port}`, 'restore app.dump.zst', 'VERIFY_SQL on app', 'unpack uploads.tar.gz']);
    expect(await realState()).toBe(before);
    expect(await drillDatabases(pg)).toBe('');
  });

  it('catches a dump whose data does not match the manifest, and a tarball that does not; the scratch database is dropped', async () => {
    const before = await realState();
    await withManifest(
      (m) => {
        const dump = m.artifacts.find((a) => a.kind === 'postgres')!;
        (dump.rowCounts as Record<string, number>)['public.t'] = 4999;
        m.artifacts.find((a) => a.kind === 'media')!.bytes = 1004;
      },
      async () => {
        const r = await runCli(['verify', '--restore', 'latest'], env);
        expect(r.exitCode).toBe(1);
        expect(r.stdout).toMatch(/^FAIL {2}restore app\.dump\.zst: does not match the manifest: table public\.t has 5000 rows, the manifest says 4999$/m);
        expect(r.stdout).toMatch(/^FAIL {2}unpack uploads\.tar\.gz: does not match the manifest: 1005 bytes of files, the manifest says 1004$/m);
        expect(r.stdout).toMatch(/restore drill FAILED \(2 of 4 checks/);
        expect((await readJson<Report>(join(runDir, 'verify.json'))).ok).toBe(false);
      },
    );
    expect(await drillDatabases(pg)).toBe('');
    expect(await realState()).toBe(before);
  });

  it('VERIFY_SQL that is false or fails the drill; the scratch database is dropped either way', async () => {
    const falsy = await runCli(['verify', '--restore'], { ...env, VERIFY_SQL: 'SELECT count(*) > 5000 FROM t' });
    expect(falsy.exitCode).toBe(1);
    expect(falsy.stdout).toMatch(/^FAIL {2}VERIFY_SQL on app: VERIFY_SQL returned "f", not true$/m);
    const broken = await runCli(['verify', '--restore'], { ...env, VERIFY_SQL: 'SELECT * FROM no_such_table' });
    expect(broken.exitCode).toBe(1);
    expect(broken.stdout).toMatch(/^FAIL {2}VERIFY_SQL on app: .*no_such_table.* does not exist/m);
    expect(await drillDatabases(pg)).toBe('');
  });

  it('a damaged dump fails at sha256, before anything is restored', async () => {
    const dump = join(runDir, 'app.dump.zst');
    const original = await readFile(dump);
    const damaged = Buffer.from(original);
    damaged.writeUInt8(damaged.readUInt8(damaged.length - 10) ^ 0xff, damaged.length - 10);
    await writeFile(dump, damaged);
    try {
      const r = await runCli(['verify', '--restore'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(/^FAIL {2}sha256: /m);
      expect(r.stdout).not.toMatch(/restore app\.dump/);
    } finally {
      await writeFile(dump, original);
    }
  });

  it('uses VERIFY_POSTGRES_HOST when set: the drill works with the real server down', async () => {
    await pg.halt();
    try {
      const down = await runCli(['verify', '--restore'], env);
      expect(down.exitCode).toBe(1);
      expect(down.stdout).toMatch(new RegExp(`^FAIL {2}connect to 127\\.0\\.0\\.1:${pg.port}: cannot connect`, 'm'));
      expect(down.stdout).toMatch(/^ok {4}unpack uploads\.tar\.gz/m);
      const elsewhere = await runCli(['verify', '--restore'], {
        ...env,
        VERIFY_POSTGRES_HOST: '127.0.0.1',
        VERIFY_POSTGRES_PORT: String(other.port),
        VERIFY_POSTGRES_PASSWORD: other.password,
        LOG_LEVEL: 'trace',
      });
      expect(elsewhere.exitCode, elsewhere.stdout + elsewhere.stderr).toBe(0);
      expect(elsewhere.stdout).toContain(`ok    connect to 127.0.0.1:${other.port}`);
      for (const secret of [pg.password, other.password]) expect(elsewhere.stdout + elsewhere.stderr).not.toContain(secret);
      expect(await drillDatabases(other)).toBe('');
    } finally {
      await pg.start();
    }
  });
});
