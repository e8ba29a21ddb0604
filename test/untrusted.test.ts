import { createHmac as hmac, randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer as createHttp } from 'node:http';
import { createServer, type Server } from 'node:net';
import { execa } from 'execa';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpFileName, formatRunId } from '../src/naming.ts';
import { forgeInBucket, forgeInVolume, type RunAt } from './support/attacker.ts';
import { CLI, filesBelow, runCli, tempDir } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

/**
 * The attacker: someone who can write to the bucket (or plant files in the volume) but cannot change the
 * sidecar's environment. Every forged run below is a genuine one copied under a new id with one thing
 * changed and its checksums recomputed; each test asserts nothing escaped: no command ran, no file was
 * written outside the volume, no connection went elsewhere, no genuine run was deleted.
 */
let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
let genuine: RunAt;
let marker: string;
const PREFIX = 'prod';

const oid = async () => pg.sql('postgres', "SELECT oid FROM pg_database WHERE datname = 'app';");
const roles = async () => pg.sql('postgres', 'SELECT rolname FROM pg_roles ORDER BY 1;');
let forged = 0;
/** A fresh run id for each forgery, older than the genuine runs. */
const nextId = () => formatRunId(new Date(Date.UTC(2026, 0, 1, 0, 0, ++forged)));

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres({ password: 'Pg-Secret-untrusted' }), startS3()]);
  await pg.sql('postgres', "CREATE DATABASE app; CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw';");
  await pg.sql('app', 'CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, md5(i::text) FROM generate_series(1, 50) i;');
  work = await tempDir('untrusted');
  marker = join(work, 'pwned');
  await mkdir(join(work, 'uploads'));
  await writeFile(join(work, 'uploads/a.txt'), 'hello\n');
  env = { ...pg.env, ...s3.env, BACKUP_DIR: join(work, 'backups'), POSTGRES_DB: 'app', POSTGRES_GLOBALS: 'true', MEDIA_PATHS: `uploads:${join(work, 'uploads')}`, S3_PREFIX: PREFIX };
  const r = await runCli(['backup'], env);
  expect(r.stderr).not.toMatch(/"level":50/);
  expect(r.exitCode).toBe(0);
  const tier = (await readdir(env.BACKUP_DIR!)).find((t) => ['daily', 'weekly', 'monthly', 'yearly'].includes(t))!;
  genuine = { tier, id: (await readdir(join(env.BACKUP_DIR!, tier)))[0]! };
});

afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('a forged globals.sql never runs a command in the sidecar', () => {
  const attacks = [
    `\\! touch MARKER`,
    `\\o |touch MARKER`,
    `\\copy (SELECT 1) TO PROGRAM 'touch MARKER'`,
    `\\setenv PSQL_PAGER 'touch MARKER'\n\\pset pager always\nSELECT 1;`,
    `SELECT 'COPY (SELECT 1) TO PROGRAM ''touch MARKER''' \\gexec`,
    `CREATE ROLE evil; COPY (SELECT 1) TO PROGRAM 'touch MARKER';`,
  ];
  for (const attack of attacks) {
    it(`refuses ${attack.split(/[ \n]/)[0]}: restore, verify and the drill fail in one line, nothing ran, the database and roles are untouched`, async () => {
      const to = { tier: genuine.tier, id: nextId() };
      await forgeInBucket(s3, PREFIX, genuine, to, ({ files }) => {
        const sql = files.get('globals.sql')!.toString('utf8');
        files.set('globals.sql', Buffer.from(sql.replace(/\n\\unrestrict /, `\n${attack.replaceAll('MARKER', marker)}\n\\unrestrict `)));
      });
      const [before, rolesBefore] = [await oid(), await roles()];
      const restore = await runCli(['restore', to.id, '--yes'], env);
      expect(restore.exitCode).toBe(1);
      expect(restore.stderr).toMatch(/^backup-sidecar: globals\.sql: line \d+: .*the file is refused and nothing in it was run$/m);
      const verify = await runCli(['verify', to.id], env);
      expect(verify.exitCode).toBe(1);
      const drill = await runCli(['verify', '--restore', to.id], env);
      expect(drill.exitCode).toBe(1);
      expect(drill.stdout).toMatch(/FAIL\s+read globals\.sql: globals\.sql: line \d+/);
      expect(await exists(marker)).toBe(false);
      expect([await oid(), await roles()]).toEqual([before, rolesBefore]);
    });
  }
});

describe('names from a manifest are checked before any file is opened', () => {
  for (const [what, file] of [
    ['a path with ../', '../../../escaped.dump'],
    ['an absolute path', `${'/tmp'}/escaped-absolute.dump`],
  ]) {
    it(`refuses ${what}: the whole run is refused in one line, nothing is written outside the volume`, async () => {
      const to = { tier: genuine.tier, id: nextId() };
      await forgeInBucket(s3, PREFIX, genuine, to, ({ manifest, files }) => {
        const dump = manifest.artifacts.find((a) => a.kind === 'postgres')!;
        files.set(file!, files.get(dump.file)!);
        dump.file = file!;
      });
      const r = await runCli(['restore', to.id, '--yes'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/is not a backup-sidecar manifest: artifacts\.\d\.file .* is not the file backup-sidecar writes for postgres "app"; nothing in the run is used/);
      expect((await filesBelow(work)).filter((f) => f.includes('escaped'))).toEqual([]);
      expect(await exists('/tmp/escaped-absolute.dump')).toBe(false);
      expect(await readdir(join(env.BACKUP_DIR!, '.partial')).catch(() => [])).toEqual([]);
    });
  }
});

describe('database names never become connection strings', () => {
  let listener: Server;
  let connections = 0;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(port, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => listener.close(() => resolve())));

  it('a forged source "host=… port=… dbname=x" connects nowhere but the configured server', async () => {
    const to = { tier: genuine.tier, id: nextId() };
    const source = `host=127.0.0.1 port=${port} dbname=x`;
    await forgeInBucket(s3, PREFIX, genuine, to, ({ manifest, files }) => {
      const dump = manifest.artifacts.find((a) => a.kind === 'postgres')!;
      files.set(dumpFileName(source, true), files.get(dump.file)!);
      dump.source = source;
      dump.file = dumpFileName(source, true);
      manifest.artifacts = manifest.artifacts.filter((a) => a.kind === 'postgres');
    });
    const drill = await runCli(['verify', '--restore', to.id], env);
    expect(drill.exitCode).toBe(0);
    const restore = await runCli(['restore', to.id, '--yes'], env);
    expect(restore.stderr).not.toMatch(/"level":50/);
    expect(restore.exitCode).toBe(0);
    expect(connections).toBe(0);
    // The name is only a name: the database of that name is on the configured server.
    expect(await pg.sql(source, 'SELECT count(*) FROM notes;')).toBe('50');
  });

  it('a database named a=b backs up, drills and restores', async () => {
    await pg.sql('postgres', 'CREATE DATABASE "a=b";');
    await pg.sql('a=b', 'CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);');
    const e = { ...pg.env, BACKUP_DIR: join(work, 'backups-eq'), POSTGRES_DB: 'a=b' };
    expect((await runCli(['backup'], e)).exitCode).toBe(0);
    expect((await runCli(['verify', '--restore'], e)).exitCode).toBe(0);
    await pg.sql('a=b', 'DELETE FROM t;');
    const r = await runCli(['restore', 'latest', '--yes'], e);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(await pg.sql('a=b', 'SELECT count(*) FROM t;')).toBe('2');
    expect(connections).toBe(0);
  });
});

describe('a run dated in the future deletes nothing', () => {
  it('in the bucket and the volume: prune keeps every genuine run, status and list call it suspicious, healthcheck does not count it', async () => {
    const future = { tier: 'yearly', id: '20990101T000000Z' };
    await forgeInBucket(s3, PREFIX, genuine, future, () => undefined);
    await forgeInVolume(env.BACKUP_DIR!, genuine, future, () => undefined);
    const strict = { ...env, BACKUP_KEEP_DAYS: '1', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0', BACKUP_KEEP_YEARS: '0' };
    const localBefore = (await filesBelow(env.BACKUP_DIR!)).filter((f) => f.endsWith(`${genuine.id}/manifest.json`));
    const r = await runCli(['backup'], strict);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/"level":40.*"run":"20990101T000000Z".*dated in the future/);
    expect((await filesBelow(env.BACKUP_DIR!)).filter((f) => f.endsWith(`${genuine.id}/manifest.json`))).toEqual(localBefore);
    expect(await s3.keys()).toContain(`${PREFIX}/${genuine.tier}/${genuine.id}/manifest.json`);
    expect(await exists(join(env.BACKUP_DIR!, 'yearly/20990101T000000Z/manifest.json'))).toBe(true);

    const status = await runCli(['status'], strict);
    expect(status.stdout).toMatch(/^SUSPICIOUS: 1 run\(s\) dated in the future, kept but never counted as the newest .*: yearly\/20990101T000000Z$/m);
    const list = await runCli(['list'], strict);
    expect(list.stdout).toMatch(/^yearly\s+20990101T000000Z\s+-\s+FUTURE/m);
    const health = await runCli(['healthcheck'], strict);
    expect(health.stdout).not.toMatch(/2099/);
    const latest = await runCli(['verify', 'latest'], strict);
    expect(latest.stdout).not.toMatch(/2099/);

    // With nothing but the future run, nothing is fresh.
    const lonely = join(work, 'backups-future');
    await mkdir(join(lonely, 'yearly'), { recursive: true });
    await cp(join(env.BACKUP_DIR!, 'yearly/20990101T000000Z'), join(lonely, 'yearly/20990101T000000Z'), { recursive: true });
    const alone = await runCli(['healthcheck'], { BACKUP_DIR: lonely });
    expect(alone.exitCode).toBe(1);
    expect(alone.stderr).toMatch(/^unhealthy: no successful backup in /);
  });
});

describe('links planted in the volume are never followed', () => {
  /** A volume with one media run, a folder outside it holding a victim file, and the link under test. */
  async function plant(name: string, link: (vol: string, outside: string) => Promise<void>) {
    const vol = join(work, `vol-${name}`);
    const outside = join(work, `outside-${name}`);
    await mkdir(join(outside, '20200101T000000Z'), { recursive: true });
    await writeFile(join(outside, 'victim.txt'), 'keep me');
    await writeFile(join(outside, '20200101T000000Z/victim.txt'), 'keep me');
    const e = { BACKUP_DIR: vol, MEDIA_PATHS: `uploads:${join(work, 'uploads')}`, BACKUP_KEEP_DAYS: '1', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0' };
    expect((await runCli(['backup'], e)).exitCode).toBe(0);
    await link(vol, outside);
    return { e, outside };
  }

  for (const [what, make] of [
    ['.partial', async (vol: string, outside: string) => {
      await rm(join(vol, '.partial'), { recursive: true, force: true });
      await symlink(outside, join(vol, '.partial'));
    }],
    ['a tier folder', async (vol: string, outside: string) => symlink(outside, join(vol, 'daily'))],
    ['a run folder', async (vol: string, outside: string) => {
      await mkdir(join(vol, 'daily'), { recursive: true });
      await symlink(join(outside, '20200101T000000Z'), join(vol, 'daily/20200101T000000Z'));
    }],
    ['a file in a run', async (vol: string, outside: string) => {
      const tier = (await readdir(vol)).find((t) => t === 'yearly')!;
      const run = (await readdir(join(vol, tier)))[0]!;
      await symlink(join(outside, 'victim.txt'), join(vol, tier, run, 'uploads.tar.gz.old'));
    }],
  ] as const) {
    it(`${what} that is a link: backup, prune and list refuse in one line naming it; nothing outside is touched`, async () => {
      const { e, outside } = await plant(what.replaceAll(' ', '-'), make);
      for (const command of [['backup'], ['prune'], ['list']]) {
        const r = await runCli(command, e);
        expect(r.exitCode, command[0]).toBe(1);
        expect(r.stderr).toMatch(/^backup-sidecar: \/.* is a symbolic link \(to \/.*\): backup-sidecar never follows a link in .* it did not make, so it does nothing; replace the link with a real folder or remove it$/m);
      }
      expect(await filesBelow(outside)).toEqual(['20200101T000000Z/victim.txt', 'victim.txt']);
    });
  }

  it('a link left at the temporary name of a status file is replaced, never written through', async () => {
    const { e, outside } = await plant('tmp', async (vol, out) => symlink(join(out, 'victim.txt'), join(vol, '.status.json.tmp')));
    expect((await runCli(['backup'], e)).exitCode).toBe(0);
    expect(await readFile(join(outside, 'victim.txt'), 'utf8')).toBe('keep me');
  });
});

describe('folders that overlap the backups volume', () => {
  it('MEDIA_PATHS inside BACKUP_DIR, or holding it, is a configuration error (exit 2, one line)', async () => {
    const vol = join(work, 'vol-overlap');
    for (const media of [`inner:${vol}/inner`, `all:${work}`, `same:${vol}`]) {
      const r = await runCli(['backup'], { BACKUP_DIR: vol, MEDIA_PATHS: media });
      expect(r.exitCode, media).toBe(2);
      expect(r.stderr).toMatch(/^backup-sidecar: MEDIA_PATHS: \S+ (is|lies inside|holds) BACKUP_DIR \(.*\): it would archive the backups themselves, and its restore would delete newer runs; keep media folders and the backups volume apart$/m);
    }
    expect(await exists(vol)).toBe(false);
  });

  it('restore --target-dir inside BACKUP_DIR, or holding it, is refused before anything is done', async () => {
    for (const dir of [join(env.BACKUP_DIR!, 'look'), work]) {
      const r = await runCli(['restore', 'uploads.tar.gz', '--yes', '--target-dir', dir], env);
      expect(r.exitCode, dir).toBe(2);
      expect(r.stderr).toMatch(/^backup-sidecar: --target-dir \S+ (lies inside|holds) BACKUP_DIR \(.*\): a restore empties its target folder first; choose a folder outside the backups volume$/m);
    }
    expect(await exists(join(env.BACKUP_DIR!, 'look'))).toBe(false);
    expect(await readdir(join(env.BACKUP_DIR!, 'pre-restore')).catch(() => [])).toEqual([]);
  });
});

describe('secrets reach a child process only when it needs them', () => {
  it('pg_dump, psql, pg_restore and tar get no S3 key, passphrase or webhook URL; the PostgreSQL tools get PGPASSWORD; hooks get secrets only through HOOK_ENV', async () => {
    const bin = await wrapperBin(join(work, 'env-bin'), { recordEnv: true });
    await writeFile(join(bin, 'tar'), `#!/bin/sh\nenv > ${join(bin, 'env.tar')}.$$\nexec /usr/bin/tar "$@"\n`);
    await chmod(join(bin, 'tar'), 0o755);
    const hookEnv = join(work, 'hook-env');
    const secrets = { ENCRYPTION_PASSPHRASE: 'passphrase-Qq7-never-shared', WEBHOOK_URL: 'http://127.0.0.1:9/hook?token=Tok-Zz9-never-shared' };
    const e = {
      ...env,
      ...secrets,
      PATH: `${bin}:${process.env.PATH}`,
      PG_BIN_DIR: bin,
      BACKUP_DIR: join(work, 'backups-env'),
      BACKUP_PRE_COMMAND: `env > ${hookEnv}.pre`,
      BACKUP_POST_COMMAND: `env > ${hookEnv}.post`,
    };
    expect((await runCli(['backup'], e)).exitCode).toBe(0);
    expect((await runCli(['restore', 'latest', '--yes', '--no-safety-backup'], e)).exitCode).toBe(0);
    const forbidden = [s3.env.AWS_SECRET_ACCESS_KEY!, secrets.ENCRYPTION_PASSPHRASE, secrets.WEBHOOK_URL, 'AWS_SECRET_ACCESS_KEY', 'ENCRYPTION_PASSPHRASE', 'WEBHOOK_URL'];
    const recorded = (await readdir(bin)).filter((f) => f.startsWith('env.'));
    for (const tool of ['pg_dump', 'psql', 'pg_restore', 'pg_dumpall', 'tar']) {
      expect(recorded.some((f) => f.startsWith(`env.${tool}.`)), tool).toBe(true);
    }
    const connecting: string[] = [];
    for (const file of recorded) {
      const text = await readFile(join(bin, file), 'utf8');
      for (const secret of forbidden) expect(text, `${file} holds ${secret}`).not.toContain(secret);
      // Only calls that connect (not `pg_dump --version`, not tar) get the password.
      if (text.includes(`PGPASSWORD=${pg.password}`)) connecting.push(file.split('.')[1]!);
      if (file.startsWith('env.tar')) expect(text).not.toContain('PGPASSWORD');
    }
    expect(new Set(connecting)).toEqual(new Set(['pg_dump', 'psql', 'pg_restore', 'pg_dumpall']));
    for (const which of ['pre', 'post']) {
      const text = await readFile(`${hookEnv}.${which}`, 'utf8');
      for (const secret of [...forbidden, pg.password]) expect(text, `${which} hook holds ${secret}`).not.toContain(secret);
      expect(text).toContain(`POSTGRES_HOST=${pg.host}`);
    }
    expect((await runCli(['backup'], { ...e, HOOK_ENV: 'WEBHOOK_URL,POSTGRES_PASSWORD' })).exitCode).toBe(0);
    const passed = await readFile(`${hookEnv}.pre`, 'utf8');
    expect(passed).toContain(`WEBHOOK_URL=${secrets.WEBHOOK_URL}`);
    expect(passed).toContain(`POSTGRES_PASSWORD=${pg.password}`);
    expect(passed).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY!);
  });

  it('credentials in S3_ENDPOINT are masked in print-config, errors, .status.json and the webhook body', async () => {
    const received: string[] = [];
    const hook = createHttp((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(body);
        res.end();
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((resolve) => hook.listen(hookPort, '127.0.0.1', resolve));
    const dead = await freePort();
    const e = { ...env, BACKUP_DIR: join(work, 'backups-mask'), S3_ENDPOINT: `http://backup:Endpoint-Pw-77@127.0.0.1:${dead}`, WEBHOOK_URL: `http://127.0.0.1:${hookPort}/h` };
    const shown = await runCli(['print-config'], e);
    const run = await runCli(['backup'], e);
    await new Promise<void>((resolve) => hook.close(() => resolve()));
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/cannot reach http:\/\/\*\*\*@127\.0\.0\.1/);
    for (const text of [shown.stdout, run.stderr, run.stdout, await readFile(join(e.BACKUP_DIR, '.status.json'), 'utf8'), ...received]) expect(text).not.toContain('Endpoint-Pw-77');
    expect(received).toHaveLength(1);
  });
});

describe('plaintext is never left behind', () => {
  it('a verify killed (-9) while decrypting leaves its plaintext only in .partial/, which the next command removes; TMPDIR stays clean', async () => {
    const keyFile = join(work, 'age.key');
    await execa('age-keygen', ['-o', keyFile]).catch((error: Error) => {
      throw new Error(`age-keygen is needed (apt-get install age): ${error.message}`);
    });
    const recipient = (await execa('age-keygen', ['-y', keyFile])).stdout.trim();
    const media = join(work, 'big-media');
    await mkdir(media);
    await writeFile(join(media, 'big.bin'), randomBytes(96 * 1024 * 1024));
    const tmp = join(work, 'private-tmp');
    await mkdir(tmp);
    const e = { BACKUP_DIR: join(work, 'backups-plain'), MEDIA_PATHS: `big:${media}`, MEDIA_COMPRESSION: 'zstd', ENCRYPTION_RECIPIENTS: recipient, ENCRYPTION_IDENTITY_FILE: keyFile, TMPDIR: tmp };
    const made = await runCli(['backup'], e);
    expect(made.stderr).not.toMatch(/"level":50/);
    expect(made.exitCode).toBe(0);

    const verify = execa(process.execPath, [CLI, 'verify'], { env: { PATH: process.env.PATH!, ...e }, extendEnv: false, reject: false });
    // The exact point: the first plaintext bytes are on disk.
    const partial = join(e.BACKUP_DIR, '.partial');
    const plaintext = async () => (await filesBelow(partial).catch(() => [])).length + (await filesBelow(tmp)).length > 0;
    const end = Date.now() + 30_000;
    while (!(await plaintext()) && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    verify.kill('SIGKILL');
    expect((await verify).signal).toBe('SIGKILL');
    expect(await filesBelow(tmp)).toEqual([]);
    expect((await filesBelow(partial)).some((f) => f.startsWith('decrypted-'))).toBe(true);

    // The killed process's lock would go stale after 10 s; remove it rather than wait.
    await rm(join(e.BACKUP_DIR, '.lock'), { recursive: true, force: true });
    const next = await runCli(['verify'], e);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/removing the leftovers of an interrupted run/);
    expect(await filesBelow(partial)).toEqual([]);
    expect(await filesBelow(tmp)).toEqual([]);
  });
});

describe('authenticated runs: BACKUP_SIGNING_KEY', () => {
  const createHmac = (key: string, data: Buffer) => hmac('sha256', key).update(data).digest('hex');
  const oldKey = randomBytes(32).toString('hex');
  const newKey = randomBytes(32).toString('hex');
  let signed: Record<string, string>;
  let run: RunAt;
  const SIGNED = 'signed';
  const md5 = () => pg.sql('app', "SELECT md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM notes;");

  beforeAll(async () => {
    signed = { ...env, BACKUP_DIR: join(work, 'backups-signed'), S3_PREFIX: SIGNED, BACKUP_SIGNING_KEY: oldKey };
    s3.requests.length = 0;
    const r = await runCli(['backup'], signed);
    expect(r.exitCode).toBe(0);
    const tier = (await readdir(signed.BACKUP_DIR!)).find((t) => ['daily', 'weekly', 'monthly', 'yearly'].includes(t))!;
    run = { tier, id: (await readdir(join(signed.BACKUP_DIR!, tier)))[0]! };
  });

  it('signs each manifest (HMAC-SHA256 of its exact bytes) in the volume and the bucket, the signature uploaded just before the manifest; the key is in no log', async () => {
    const dir = join(signed.BACKUP_DIR!, run.tier, run.id);
    const manifest = await readFile(join(dir, 'manifest.json'));
    expect((await readFile(join(dir, 'manifest.json.sig'), 'utf8')).trim()).toBe(createHmac(oldKey, manifest));
    const puts = s3.requests.filter((q) => q.method === 'PUT' && q.url.includes(`/${run.id}/manifest.json`)).map((q) => q.url.split('?')[0]!.split('/').pop());
    expect(puts).toEqual(['manifest.json.sig', 'manifest.json']);
    expect(await s3.keys()).toContain(`${SIGNED}/${run.tier}/${run.id}/manifest.json.sig`);
    const verify = await runCli(['verify', '--restore'], { ...signed, LOG_LEVEL: 'trace' });
    expect(verify.exitCode).toBe(0);
    expect(verify.stderr + verify.stdout).not.toContain(oldKey);
    expect((await runCli(['print-config'], signed)).stdout).toMatch(/^signing: on, with BACKUP_SIGNING_KEY \(1 key; the first signs\)$/m);
  });

  it('a dump swapped for another with the same row counts is refused before pg_restore runs: restore, verify and the drill exit 1, the database is unchanged', async () => {
    await pg.sql('postgres', 'CREATE DATABASE evil;');
    await pg.sql('evil', "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, 'forged' FROM generate_series(1, 50) i;");
    const evil = (await execa('/usr/lib/postgresql/15/bin/pg_dump', ['-Fc'], { env: { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'evil' }, encoding: 'buffer' })).stdout as Uint8Array;
    const swap = ({ files }: { files: Map<string, Buffer> }) => void files.set('app.dump.zst', zstdCompressSync(evil));
    const before = await md5();
    const inBucket = { tier: run.tier, id: nextId() };
    await forgeInBucket(s3, SIGNED, run, inBucket, swap);
    const restore = await runCli(['restore', inBucket.id, '--yes'], signed);
    expect(restore.exitCode).toBe(1);
    expect(restore.stderr).toMatch(/^backup-sidecar: run s3:\/\/backups\/signed\/\S+ has a signature that does not match its manifest under any BACKUP_SIGNING_KEY: it was changed or forged, so it is refused and nothing was touched$/m);
    const inVolume = { tier: run.tier, id: nextId() };
    await forgeInVolume(signed.BACKUP_DIR!, run, inVolume, swap);
    for (const command of [['restore', inVolume.id, '--yes'], ['verify', inVolume.id], ['verify', '--restore', inVolume.id]]) {
      const r = await runCli(command, signed);
      expect(r.exitCode, command.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/has a signature that does not match its manifest/);
    }
    const unsigned = { tier: run.tier, id: nextId() };
    await forgeInBucket(s3, SIGNED, run, unsigned, swap, { signature: 'drop' });
    const dropped = await runCli(['restore', unsigned.id, '--yes', '--no-safety-backup'], signed);
    expect(dropped.exitCode).toBe(1);
    expect(dropped.stderr).toMatch(/is not signed \(no manifest\.json\.sig\) and BACKUP_SIGNING_KEY is set: it may be forged, so it is refused and nothing was touched; if it is an older run made before the key was set, pass --trust-unsigned$/m);
    expect(await md5()).toBe(before);
    expect(await pg.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE 'backup_sidecar_drill_%' OR datname LIKE 'app__%';")).toBe('0');
  });

  it('an older unsigned run is used only with --trust-unsigned; a wrong signature never', async () => {
    const e = { ...env, BACKUP_SIGNING_KEY: oldKey };
    const refused = await runCli(['verify', genuine.id], e);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/is not signed .* pass --trust-unsigned$/m);
    expect((await runCli(['verify', genuine.id, '--trust-unsigned'], e)).exitCode).toBe(0);
    expect((await runCli(['verify', '--restore', genuine.id, '--trust-unsigned'], e)).exitCode).toBe(0);
  });

  it('rotation: with the new key first and the old one after, old runs verify and new runs are signed with the new key', async () => {
    const keyFile = join(work, 'signing.keys');
    await writeFile(keyFile, `${newKey}\n${oldKey}\n`);
    const rotated = { ...signed, BACKUP_SIGNING_KEY: '', BACKUP_SIGNING_KEY_FILE: keyFile };
    expect((await runCli(['verify', run.id], rotated)).exitCode).toBe(0);
    const r = await runCli(['backup'], rotated);
    expect(r.exitCode).toBe(0);
    const dir = /^(\/\S+) \(/m.exec(r.stdout)![1]!;
    expect((await readFile(join(dir, 'manifest.json.sig'), 'utf8')).trim()).toBe(createHmac(newKey, await readFile(join(dir, 'manifest.json'))));
    expect((await runCli(['verify', run.id], { ...signed, BACKUP_SIGNING_KEY: newKey })).exitCode).toBe(1);
  });

  it('a short key is a configuration error; without a key the passphrase derives one; with neither, print-config says what unsigned means', async () => {
    const bad = await runCli(['backup'], { ...signed, BACKUP_SIGNING_KEY: 'too-short' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^backup-sidecar: BACKUP_SIGNING_KEY: each key must be at least 32 characters; make one with: openssl rand -hex 32$/m);
    expect(bad.stderr).not.toContain('too-short');
    const derived = await runCli(['print-config'], { ...env, ENCRYPTION_PASSPHRASE: 'a passphrase' });
    expect(derived.stdout).toMatch(/^signing: on, with a key derived from ENCRYPTION_PASSPHRASE \(HKDF\)/m);
    expect((await runCli(['print-config'], env)).stdout).toMatch(/^signing: off: runs are unsigned, so anyone who can write to the bucket can forge a run that restore would use; set BACKUP_SIGNING_KEY/m);
  });

  it('a forged newer run never decides what is pruned, and the catch-up never uploads a run whose signature is wrong', async () => {
    // Newer than every genuine run, yet within CLOCK_SKEW_MAX: only its signature gives it away.
    const now = formatRunId(new Date(Date.now() + 60_000));
    const forgedLocal = { tier: 'daily', id: now };
    await forgeInVolume(signed.BACKUP_DIR!, run, forgedLocal, () => undefined);
    await forgeInBucket(s3, SIGNED, run, forgedLocal, () => undefined, { signature: 'drop' });
    const dry = await runCli(['prune', '--dry-run'], signed);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^volume\\s+daily\\s+${now}\\s+keep\\s+newer than the newest complete run \\(signature does not match\\)$`, 'm'));
    expect(dry.stdout).toMatch(new RegExp(`^s3:\\/\\/\\S+\\s+daily\\s+${now}\\s+keep\\s+newer than the newest complete run \\(unsigned\\)$`, 'm'));
    expect(dry.stdout).not.toMatch(new RegExp(`${now}\\s+keep\\s+the newest complete run`));

    // An hour back: no genuine run of this test can have that id.
    const other = { tier: 'daily', id: formatRunId(new Date(Date.now() - 3_600_000)) };
    await forgeInVolume(signed.BACKUP_DIR!, run, other, ({ manifest }) => {
      manifest.offsite = null;
    });
    const job = await runCli(['backup'], signed);
    expect(job.exitCode).toBe(1);
    expect(job.stderr).toMatch(/not uploaded offsite: run daily\/\S+ has a signature that does not match its manifest/);
    expect((await s3.keys()).filter((k) => k.includes(other.id))).toEqual([]);
  });
});
