import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesBelow, tempDir, until } from '../support/cli.ts';
import { IMAGE, buildImage, podman, requirePodman } from '../support/podman.ts';
import { startPostgres, type TestServer } from '../support/postgres-server.ts';

// The image as users run it: built from the Dockerfile, started with podman next to a PostgreSQL server
// on the host, with the backup volume, a read-only media folder and the password as a mounted secret.
const UID = 1234;
const GID = 2345;
const NAME = `bsc-image-test-${process.pid}`;
const HOOKED = `${NAME}-hooked`;
const SERVERFUL = `${NAME}-pitr`;
const DB = `${NAME}-db`;
let imageMb = 0;

let pg: TestServer;
let work: string;
let volume: string;

function containerEnv(extra: Record<string, string> = {}): string[] {
  const env: Record<string, string> = {
    PUID: String(UID),
    PGID: String(GID),
    POSTGRES_HOST: '127.0.0.1',
    POSTGRES_PORT: String(pg.port),
    POSTGRES_USER: 'postgres',
    POSTGRES_PASSWORD_FILE: '/run/secrets/postgres_password',
    POSTGRES_DB: 'app',
    MEDIA_PATHS: 'uploads:/media/uploads',
    SCHEDULE: '@daily',
    BACKUP_ON_START: 'true',
    SHUTDOWN_TIMEOUT: '3s',
    ...extra,
  };
  return Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
}

function mounts(backups: string): string[] {
  return ['-v', `${backups}:/backups`, '-v', `${join(work, 'uploads')}:/media/uploads:ro`, '-v', `${join(work, 'pg_password')}:/run/secrets/postgres_password:ro`];
}

async function start(name: string, backups: string, extra: Record<string, string> = {}): Promise<void> {
  const result = await podman(['run', '-d', '--name', name, '--network=host', '--health-interval=disable', ...containerEnv(extra), ...mounts(backups), IMAGE]);
  if (result.exitCode !== 0) throw new Error(`podman run failed: ${result.stderr}`);
}

/** A process's real user and group ids, read on the host. */
async function ids(pid: number): Promise<{ uid: number; gid: number; command: string }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
  return { uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]), gid: Number(/^Gid:\s+(\d+)/m.exec(status)![1]), command };
}

async function runDirs(backups: string): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) for (const id of await readdir(join(backups, tier)).catch(() => [])) out.push(`${tier}/${id}`);
  return out;
}

beforeAll(async () => {
  await requirePodman();
  imageMb = await buildImage((line) => process.stderr.write(`${line}\n`));
  pg = await startPostgres();
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000);');
  work = await tempDir('image');
  volume = join(work, 'backups');
  await mkdir(volume, { mode: 0o755 });
  await mkdir(join(work, 'uploads/2026'), { recursive: true });
  await writeFile(join(work, 'uploads/2026/photo.jpg'), 'not really a photo');
  await writeFile(join(work, 'pg_password'), pg.password, { mode: 0o444 });
  await start(NAME, volume);
}, 900_000);

afterAll(async () => {
  await podman(['rm', '--force', '--ignore', '--time', '0', NAME, HOOKED, SERVERFUL, DB]);
  await pg?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the image', () => {
  it('starts the daemon as PUID:PGID under tini, backs up on start, and the volume belongs to PUID:PGID', async () => {
    const [run] = await until('the first run in the volume', async () => {
      const dirs = await runDirs(volume);
      return dirs.length > 0 ? dirs : undefined;
    }, 60_000);
    const manifest = JSON.parse(await readFile(join(volume, run!, 'manifest.json'), 'utf8')) as { artifacts: { file: string }[] };
    expect(manifest.artifacts.map((a) => a.file).sort()).toEqual(['app.dump.zst', 'uploads.tar.gz']);

    for (const path of [volume, ...(await readdir(volume, { recursive: true })).map((p) => join(volume, p))]) {
      const s = await lstat(path);
      expect({ path, uid: s.uid, gid: s.gid }).toEqual({ path, uid: UID, gid: GID });
    }

    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', NAME])).stdout);
    const init = await ids(pid);
    expect(init).toMatchObject({ uid: UID, gid: GID });
    expect(init.command).toMatch(/^tini -- /);
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(' ').map(Number);
    expect(children).toHaveLength(1);
    const daemon = await ids(children[0]!);
    expect(daemon).toMatchObject({ uid: UID, gid: GID });
    expect(daemon.command).toContain('/app/dist/cli.js daemon');
  });

  it('healthcheck is healthy after the backup (the image HEALTHCHECK and docker exec)', async () => {
    const check = await podman(['healthcheck', 'run', NAME]);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    expect((await podman(['inspect', '--format', '{{.State.Health.Status}}', NAME])).stdout).toBe('healthy');
    const exec = await podman(['exec', NAME, 'healthcheck']);
    expect(exec.exitCode).toBe(0);
    expect(`${exec.stdout}${exec.stderr}`).toMatch(/ok: the newest successful backup/);
  });

  it('the commands are on PATH: docker exec backup list / status / verify', async () => {
    const [run] = await runDirs(volume);
    const list = await podman(['exec', NAME, 'list']);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toContain(run!.split('/')[1]);
    expect((await podman(['exec', NAME, 'status'])).exitCode).toBe(0);
    const verify = await podman(['exec', NAME, 'verify']);
    expect(verify.exitCode, verify.stderr).toBe(0);
    expect((await podman(['exec', NAME, 'backup-sidecar', '--version'])).stdout).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('docker exec backup restore <file> --yes restores the database; its safety backup belongs to PUID:PGID', async () => {
    const [run] = await runDirs(volume);
    await pg.sql('app', 'DELETE FROM t WHERE x > 10;');
    const restore = await podman(['exec', NAME, 'restore', `${run}/app.dump.zst`, '--yes']);
    expect(restore.exitCode, restore.stderr.slice(-2000)).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM t;')).toBe('1000');
    const safety = await filesBelow(join(volume, 'pre-restore'));
    expect(safety.some((f) => f.endsWith('app.dump.zst'))).toBe(true);
    for (const file of safety) expect((await lstat(join(volume, 'pre-restore', file))).uid).toBe(UID);
  });

  it('no secret in the container config or its logs', async () => {
    const logs = await podman(['logs', NAME]);
    const inspect = await podman(['inspect', NAME]);
    for (const text of [logs.stdout, logs.stderr, inspect.stdout]) expect(text).not.toContain(pg.password);
  });

  it('SIGTERM stops the idle daemon at once, exit 0', async () => {
    const began = Date.now();
    await podman(['kill', '--signal', 'TERM', NAME]);
    const wait = await podman(['wait', NAME]);
    expect(wait.stdout.trim()).toBe('0');
    expect(Date.now() - began).toBeLessThan(5_000);
    expect((await podman(['logs', NAME])).stderr).toMatch(/"msg":"stopped"/);
  });

  it('SIGTERM during a backup (a slow BACKUP_PRE_COMMAND) stops it within SHUTDOWN_TIMEOUT, exit 0', async () => {
    const backups = join(work, 'hooked');
    await mkdir(backups);
    await start(HOOKED, backups, { BACKUP_PRE_COMMAND: 'touch /backups/hook-started; sleep 120', SHUTDOWN_TIMEOUT: '2s' });
    await until('the hook to run', async () => (await readdir(backups)).includes('hook-started') || undefined);
    const began = Date.now();
    await podman(['kill', '--signal', 'TERM', HOOKED]);
    const wait = await podman(['wait', HOOKED]);
    const elapsed = Date.now() - began;
    expect(wait.stdout.trim()).toBe('0');
    expect(elapsed).toBeGreaterThanOrEqual(2_000);
    expect(elapsed).toBeLessThan(10_000);
    expect((await podman(['logs', HOOKED])).stderr).toMatch(/BACKUP_PRE_COMMAND failed \(stopped: the daemon is shutting down/);
    expect(await runDirs(backups)).toEqual([]);
  });

  it('as a one-off: --version, a bad PUID (exit 2, one line), and --user without the root preparation', async () => {
    const version = await podman(['run', '--rm', '--no-healthcheck', IMAGE, '--version']);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+$/);
    const bad = await podman(['run', '--rm', '--no-healthcheck', '-e', 'PUID=nobody', IMAGE, 'list']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim()).toBe('entrypoint: PUID must be a numeric user id, got "nobody" (example: PUID=1000)');
    const asUser = await podman(['run', '--rm', '--no-healthcheck', '--user', `${UID}:${GID}`, '-v', `${volume}:/backups`, IMAGE, 'list', '--json']);
    expect(asUser.exitCode, asUser.stderr).toBe(0);
    expect((JSON.parse(asUser.stdout) as unknown[]).length).toBeGreaterThanOrEqual(1);
    // docker-postgres-backup-local's compose files set `user: postgres:postgres`.
    const asPostgres = await podman(['run', '--rm', '--no-healthcheck', '--user', 'postgres:postgres', '--entrypoint', 'id', IMAGE]);
    expect(asPostgres.exitCode, asPostgres.stderr).toBe(0);
    expect(asPostgres.stdout).toMatch(/^uid=999\(postgres\) gid=999\(postgres\)/);
  });

  it('built with --build-arg PG_SERVER_MAJORS=15, the image runs the PITR drill itself, and the compose guide works in containers: restore --pitr as root into a new volume, then PostgreSQL as 999 recovers on it', async () => {
    const tag = `${IMAGE}-server15`;
    const mb = await buildImage((line) => process.stderr.write(`${line}\n`), tag, { PG_SERVER_MAJORS: '15' });
    process.stderr.write(`PG_SERVER_MAJORS=15 adds ${(mb - imageMb).toFixed(0)} MB (${imageMb.toFixed(0)} MB without, ${mb.toFixed(0)} MB with)\n`);
    expect(mb).toBeGreaterThan(imageMb);
    const label = await podman(['image', 'inspect', '--format', '{{index .Labels "io.backup-sidecar.pg-server-majors"}}', tag]);
    expect(label.stdout.trim()).toBe('15');

    const backups = join(work, 'pitr');
    await mkdir(backups);
    const env = containerEnv({ WAL_ARCHIVE: 'true', WAL_SLOT: 'image_slot', BACKUP_ON_START: 'false', BASE_BACKUP_SCHEDULE: '0 0 1 1 *' });
    const run = await podman(['run', '-d', '--name', SERVERFUL, '--network=host', '--health-interval=disable', ...env, ...mounts(backups), tag]);
    expect(run.exitCode, run.stderr).toBe(0);
    try {
      await until('the image_slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'image_slot'")) === 't' ? true : undefined), 60_000);
      const base = await podman(['exec', SERVERFUL, 'backup-sidecar', 'basebackup']);
      expect(base.exitCode, base.stderr).toBe(0);
      const runId = base.stdout.split(' ')[0]!.split('/').at(-1)!;
      await pg.sql('app', 'CREATE TABLE guide AS SELECT generate_series(1, 42) AS x;');
      const segment = (await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();')).split('\n')[0]!;
      await until(`${segment} archived`, async () => ((await readdir(join(backups, 'wal/00000001')).catch((): string[] => [])).includes(`${segment}.zst`) ? true : undefined), 60_000);
      // No PG_SERVER_BIN_DIR: the drill finds the server the build added.
      const drill = await podman(['exec', SERVERFUL, 'verify', '--restore', runId]);
      expect(drill.exitCode, drill.stdout + drill.stderr).toBe(0);
      const dir = (await runDirs(backups)).find((d) => d.endsWith(`/${runId}`))!;
      const report = JSON.parse(await readFile(join(backups, dir, 'verify.json'), 'utf8')) as { checks: { check: string; ok: boolean; detail: string }[] };
      expect(report.checks.find((c) => c.check === 'recover to the end of the WAL')).toMatchObject({ ok: true, detail: expect.stringMatching(/^PostgreSQL 15\S* recovered \d+ WAL file\(s\) to \d+\/[0-9A-F]+, became consistent and promoted/) });

      // The compose guide, in containers: `docker compose run --rm --user root -v db-pitr:/restore backup
      // restore --pitr …` into a new volume (root's, like a fresh named volume), then the database as the
      // postgres image's user (999) on it.
      const pitrVolume = join(work, 'db-pitr');
      await mkdir(pitrVolume, { mode: 0o755 });
      const restored = await podman(['run', '--rm', '--no-healthcheck', '--user', 'root', '--network=host', ...env, ...mounts(backups), '-v', `${pitrVolume}:/restore`, tag, 'restore', '--pitr', 'latest', '--pgdata', '/restore']);
      expect(restored.exitCode, restored.stderr).toBe(0);
      expect(restored.stdout).toContain('owned by 999:999 (--pgdata-owner)');
      // The backups volume stays the daemon's: nothing in it became root's.
      for (const entry of ['', ...(await readdir(backups, { recursive: true }))]) expect((await lstat(join(backups, entry))).uid, entry).toBe(UID);
      const port = String(20_000 + (process.pid % 20_000));
      const db = await podman(['run', '-d', '--name', DB, '--user', '999:999', '--network=host', '-v', `${pitrVolume}:/var/lib/postgresql/data`, '--entrypoint', '/usr/lib/postgresql/15/bin/postgres', tag, '-D', '/var/lib/postgresql/data', '-p', port, '-k', '/tmp', '-c', 'listen_addresses=127.0.0.1']);
      expect(db.exitCode, db.stderr).toBe(0);
      // The restored cluster keeps the server's scram password; -w: never wait at a password prompt.
      const psql = (sql: string) => execa('/usr/lib/postgresql/15/bin/psql', ['-X', '-w', '-q', '-A', '-t', '-h', '127.0.0.1', '-p', port, '-U', 'postgres', '-d', 'app', '-c', sql], { reject: false, timeout: 10_000, env: { PGPASSWORD: pg.password } });
      await until('the restored database to recover and promote', async () => ((await psql('SELECT pg_is_in_recovery()')).stdout === 'f' ? true : undefined), 60_000).catch(async (error: unknown) => {
        const logs = await podman(['logs', DB]);
        throw new Error(`${(error as Error).message}; the database said:\n${logs.stdout}${logs.stderr}`);
      });
      expect((await psql('SELECT count(*) FROM guide')).stdout).toBe('42');
    } finally {
      await podman(['rm', '--force', '--ignore', '--time', '0', SERVERFUL, DB]);
      await pg.sql('postgres', "SELECT pg_drop_replication_slot('image_slot') FROM pg_replication_slots WHERE slot_name = 'image_slot';");
    }
  }, 900_000);

  it('encrypts in the image: a one-off backup with ENCRYPTION_RECIPIENTS writes .age files that age -d decrypts on the host', async () => {
    const backups = join(work, 'encrypted');
    await mkdir(backups);
    const key = join(work, 'age.key');
    await execa('age-keygen', ['-o', key]);
    const recipient = (await execa('age-keygen', ['-y', key])).stdout.trim();
    const run = await podman(['run', '--rm', '--no-healthcheck', '--network=host', ...containerEnv({ ENCRYPTION_RECIPIENTS: recipient }), ...mounts(backups), IMAGE, 'backup']);
    expect(run.exitCode, run.stderr).toBe(0);
    const [dir] = await runDirs(backups);
    expect((await readdir(join(backups, dir!))).sort()).toEqual(['app.dump.zst.age', 'manifest.json', 'uploads.tar.gz.age']);
    const listing = await execa('sh', ['-c', `age -d -i '${key}' '${join(backups, dir!, 'uploads.tar.gz.age')}' | tar -tzf -`]);
    expect(listing.stdout).toContain('./2026/photo.jpg');
  });
});
