import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesBelow, readJson, runCli, tempDir } from './support/cli.ts';
import { PG15_BIN, startPostgres, type TestServer } from './support/postgres-server.ts';

// POSTGRES_GLOBALS: a run holds the roles too, so a brand-new server gets back what the app logs in with.
let old: TestServer;
let fresh: TestServer;
let work: string;
let env: Record<string, string>;

/** A query as some role, with its password, over TCP (scram): what the app itself would do. */
async function asRole(server: TestServer, user: string, password: string, sql: string): Promise<string> {
  const { stdout } = await execa(join(PG15_BIN, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: { PGHOST: '127.0.0.1', PGPORT: String(server.port), PGUSER: user, PGPASSWORD: password, PGDATABASE: 'app' },
  });
  return stdout;
}

beforeAll(async () => {
  [old, fresh] = await Promise.all([startPostgres(), startPostgres({ password: 'fresh-server-Secr3t' })]);
  await old.sql(
    'postgres',
    `CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw-1';
     CREATE ROLE app_reader LOGIN PASSWORD 'reader-pw-2';
     CREATE ROLE "Report Writers" NOLOGIN;
     GRANT "Report Writers" TO app_reader;
     CREATE DATABASE app OWNER app_owner;`,
  );
  await old.sql(
    'app',
    `CREATE TABLE orders (id int PRIMARY KEY, total numeric);
     INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 300) g;
     ALTER TABLE orders OWNER TO app_owner;
     GRANT SELECT ON orders TO "Report Writers";`,
  );
  work = await tempDir('globals');
  env = { ...old.env, POSTGRES_DB: 'app', POSTGRES_GLOBALS: 'true', BACKUP_DIR: join(work, 'backups') };
});

afterAll(async () => {
  await Promise.all([old?.stop(), fresh?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('POSTGRES_GLOBALS', () => {
  it('puts the roles into the run (globals.sql, listed in the manifest), first', async () => {
    const r = await runCli(['backup'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    const tier = (await readdir(env.BACKUP_DIR!)).find((d) => d !== '.partial' && !d.startsWith('.'))!;
    const run = (await readdir(join(env.BACKUP_DIR!, tier)))[0]!;
    const manifest = await readJson<{ artifacts: { file: string; kind: string; roles?: string[] }[] }>(join(env.BACKUP_DIR!, tier, run, 'manifest.json'));
    expect(manifest.artifacts.map((a) => a.file)).toEqual(['globals.sql', 'app.dump.zst']);
    expect(manifest.artifacts[0]!.roles).toEqual(expect.arrayContaining(['app_owner', 'app_reader', 'Report Writers', 'postgres']));
    expect(JSON.stringify(manifest)).not.toMatch(/SCRAM-SHA-256|owner-pw-1/);
    expect((await runCli(['verify'], env)).stdout).toMatch(/^ok {4}globals\.sql: sha256 ok, \d+ roles and 0 tablespaces, as in the manifest$/m);
    const drill = await runCli(['verify', '--restore'], env);
    expect(drill.exitCode, drill.stdout).toBe(0);
    expect(drill.stdout).toMatch(/^ok {4}read globals\.sql: \d+ roles and 0 tablespaces, as in the manifest \(not restored/m);
  });

  it('restore of the whole run onto a brand-new server recreates the roles, then the database: the app role logs in and reads', async () => {
    const target = { ...env, ...fresh.env, POSTGRES_DB: 'app' };
    const r = await runCli(['restore', 'latest', '--yes'], target);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/roles and tablespaces.*\d+ roles present/);
    expect(await asRole(fresh, 'app_owner', 'owner-pw-1', 'SELECT count(*) FROM orders')).toBe('300');
    expect(await asRole(fresh, 'app_reader', 'reader-pw-2', 'SELECT sum(total) FROM orders')).toBe('67725.0');
    expect(await fresh.sql('app', "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'orders';")).toBe('app_owner');
    // The role the sidecar connects as keeps this server's own password.
    expect(await fresh.sql('postgres', 'SELECT 1;')).toBe('1');
    await expect(asRole(fresh, 'postgres', old.password, 'SELECT 1')).rejects.toThrow(/password authentication failed/);
  });

  it('restoring again over existing roles works, and the safety backup holds the server\'s roles as they were', async () => {
    const target = { ...env, ...fresh.env, POSTGRES_DB: 'app' };
    const r = await runCli(['restore', 'latest', '--yes'], target);
    expect(r.exitCode, r.stderr).toBe(0);
    const safety = (await readdir(join(env.BACKUP_DIR!, 'pre-restore'))).sort().at(-1)!;
    expect((await readdir(join(env.BACKUP_DIR!, 'pre-restore', safety))).sort()).toEqual(['app.dump.zst', 'globals.sql', 'manifest.json']);
  });

  it('a database owner that is no superuser cannot read the roles: the run fails with a one-line reason, leaving nothing behind', async () => {
    const dir = join(work, 'not-superuser');
    const r = await runCli(['backup'], { ...env, POSTGRES_USER: 'app_owner', POSTGRES_PASSWORD: 'owner-pw-1', BACKUP_DIR: dir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/pg_dumpall --globals-only failed \(POSTGRES_GLOBALS needs a superuser\): .*permission denied/);
    expect(await filesBelow(dir)).toEqual(['.history.jsonl', '.status.json']);
  });
});
