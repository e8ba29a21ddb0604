import { createServer } from 'node:http';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { runCli, tempDir } from './support/cli.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

/** The peers' own README examples (compose `environment:` blocks), as their users have them. */
const words = (text: string) => Object.fromEntries(text.trim().split(/\s+(?=[A-Z0-9_]+=)/).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
const PBL = words(`POSTGRES_HOST=postgres POSTGRES_DB=database POSTGRES_USER=username POSTGRES_PASSWORD=password
POSTGRES_EXTRA_OPTS=-Z1 --schema=public --blobs SCHEDULE=@daily BACKUP_ON_START=TRUE
BACKUP_KEEP_DAYS=7 BACKUP_KEEP_WEEKS=4 BACKUP_KEEP_MONTHS=6 HEALTHCHECK_PORT=8080`);
const PBS3 = words(`SCHEDULE=@weekly BACKUP_KEEP_DAYS=7 PASSPHRASE=passphrase S3_REGION=region S3_ACCESS_KEY_ID=key
S3_SECRET_ACCESS_KEY=secret S3_BUCKET=my-bucket S3_PREFIX=backup POSTGRES_HOST=postgres
POSTGRES_DATABASE=dbname POSTGRES_USER=user POSTGRES_PASSWORD=password`);

describe("the peers' README environments parse with only the image changed", () => {
  it('docker-postgres-backup-local: BACKUP_ON_START=TRUE and its extra options', () => {
    const { config, problems } = loadConfig(PBL, { needSources: true });
    expect(problems).toEqual([]);
    expect(config?.daemon.onStart).toBe(true);
    expect(config?.postgres?.databases).toEqual(['database']);
    expect(config?.postgres?.extraOpts).toEqual(['-Z1', '--schema=public', '--blobs']);
    expect(config?.daemon.healthPort).toBe(8080);
  });

  it('booleans take true/false/yes/no/1/0 in any case', () => {
    for (const [raw, value] of [['TRUE', true], ['Yes', true], ['1', true], ['False', false], ['NO', false], ['0', false]] as const) {
      expect(loadConfig({ ...PBL, BACKUP_ON_START: raw }, { needSources: true }).config?.daemon.onStart).toBe(value);
    }
    expect(loadConfig({ ...PBL, BACKUP_ON_START: 'maybe' }, { needSources: true }).problems[0]).toMatch(/^BACKUP_ON_START="maybe": expected true or false/);
  });

  it("postgres-backup-s3: POSTGRES_DATABASE, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, PGDUMP_EXTRA_OPTS, and PASSPHRASE encrypts", () => {
    const { config, problems } = loadConfig({ ...PBS3, PGDUMP_EXTRA_OPTS: '--no-comments', S3_S3V4: 'yes' }, { needSources: true });
    expect(problems).toEqual([]);
    expect(config?.postgres?.databases).toEqual(['dbname']);
    expect(config?.s3?.credentials).toMatchObject({ accessKeyId: 'key', secretAccessKey: 'secret' });
    expect(config?.postgres?.extraOpts).toEqual(['--no-comments']);
    expect(config?.encryption).toEqual({ passphrase: 'passphrase' });
  });

  it('an alias and our name set to different values fail at once in one line; POSTGRES_CLUSTER=TRUE means every database', () => {
    expect(loadConfig({ ...PBS3, POSTGRES_DB: 'other' }, { needSources: true }).problems).toEqual([
      'POSTGRES_DATABASE, POSTGRES_DB: both set, to different values; keep POSTGRES_DB (POSTGRES_DATABASE is postgres-backup-s3\'s name for it)',
    ]);
    expect(loadConfig({ ...PBL, POSTGRES_CLUSTER: 'TRUE' }, { needSources: true }).config?.postgres).toMatchObject({ all: true, databases: [] });
    expect(loadConfig({ ...PBL, POSTGRES_DB: '*', POSTGRES_EXCLUDE_DB: 'a,b' }, { needSources: true }).config?.postgres).toMatchObject({ all: true, exclude: ['a', 'b'] });
    expect(loadConfig({ ...PBL, POSTGRES_DB: 'app,*' }, { needSources: true }).problems[0]).toMatch(/^POSTGRES_DB: \* stands alone/);
    expect(loadConfig({ ...PBL, POSTGRES_EXCLUDE_DB: 'a' }, { needSources: true }).problems[0]).toMatch(/^POSTGRES_EXCLUDE_DB: only used with POSTGRES_DB=\*/);
  });
});

describe('peer variables without an equivalent', () => {
  it('warn once each, saying what happens instead; those unsafe to ignore (a schedule, a retention) exit 2', () => {
    const { problems, warnings } = loadConfig({ ...PBL, BACKUP_SUFFIX: '.sql.gz', BACKUP_LATEST_TYPE: 'symlink', WEBHOOK_EXTRA_ARGS: '-k', VALIDATE_ON_START: 'TRUE' }, { needSources: true });
    expect(loadConfig({ ...PBL, VALIDATE_ON_START: 'FALSE' }, { needSources: true }).config?.daemon.validateOnStart).toBe(false);
    expect(problems).toEqual([]);
    expect(warnings).toEqual([
      'BACKUP_SUFFIX: not used by backup-sidecar, ignored: file names are fixed here (<database>.dump.zst, <name>.tar.gz)',
      'BACKUP_LATEST_TYPE: not used by backup-sidecar, ignored: no "latest" link is made (the volume holds no links); `restore latest` finds the newest run',
      'WEBHOOK_EXTRA_ARGS: not used by backup-sidecar, ignored: webhooks are sent without curl, as a JSON POST',
      "POSTGRES_EXTRA_OPTS sets pg_dump's own compression (1), which wins over POSTGRES_COMPRESSION; remove it for zstd on every core, several times faster",
    ]);
    const refused = loadConfig({ ...PBL, BACKUP_CRON_EXPRESSION: '0 2 * * *', BACKUP_RETENTION_DAYS: '30' }, { needSources: true }).problems;
    expect(refused).toEqual([
      'BACKUP_CRON_EXPRESSION: not a variable of backup-sidecar; use SCHEDULE (a cron expression) instead: ignoring it would back up on another schedule',
      'BACKUP_RETENTION_DAYS: not a variable of backup-sidecar; use BACKUP_KEEP_DAYS (and BACKUP_KEEP_WEEKS, _MONTHS) instead: ignoring it would keep runs for another time',
    ]);
  });
});

describe('offen/docker-volume-backup variables', () => {
  it('those that would change where or how backups go exit 2 naming ours; the rest warn; AGE_PASSPHRASE encrypts as ENCRYPTION_PASSPHRASE', () => {
    const refused = loadConfig({ ...PBL, AWS_S3_BUCKET_NAME: 'b', AWS_S3_PATH: 'p', AWS_ENDPOINT: 'http://minio:9000', GPG_PASSPHRASE: 'g', AGE_PUBLIC_KEYS: 'age1x' }, { needSources: true }).problems;
    expect(refused).toEqual([
      'AWS_S3_BUCKET_NAME: not a variable of backup-sidecar; use S3_BUCKET instead: ignoring it would leave every backup on this host only',
      'AWS_S3_PATH: not a variable of backup-sidecar; use S3_PREFIX instead: ignoring it would write to another place in the bucket',
      'AWS_ENDPOINT: not a variable of backup-sidecar; use S3_ENDPOINT instead: ignoring it would send the backups to AWS',
      'GPG_PASSPHRASE: not a variable of backup-sidecar; use ENCRYPTION_PASSPHRASE (age, not gpg) instead: ignoring it would store the backups unencrypted',
      'AGE_PUBLIC_KEYS: not a variable of backup-sidecar; use ENCRYPTION_RECIPIENTS instead: ignoring it would store the backups unencrypted',
    ]);
    expect(refused.join('\n')).not.toContain('"g"');
    const { warnings, config } = loadConfig({ ...PBL, BACKUP_FILENAME: 'x.tar.gz', BACKUP_COMPRESSION: 'zst', BACKUP_SOURCES: '/backup', NOTIFICATION_URLS: 'smtp://x', AGE_PASSPHRASE: 'long enough passphrase' }, { needSources: true });
    expect(warnings.filter((w) => /^(BACKUP_FILENAME|BACKUP_COMPRESSION|BACKUP_SOURCES|NOTIFICATION_URLS):/.test(w))).toHaveLength(4);
    expect(config?.encryption).toBeDefined();
    expect(loadConfig({ ...PBL, AGE_PASSPHRASE: 'a', ENCRYPTION_PASSPHRASE: 'b' }, { needSources: true }).problems).toEqual([
      "AGE_PASSPHRASE, ENCRYPTION_PASSPHRASE: both set, to different values; keep ENCRYPTION_PASSPHRASE (AGE_PASSPHRASE is docker-volume-backup's name for it)",
    ]);
  });
});

describe('a mistyped variable', () => {
  it('with one of our prefixes, close to a known name: a warning naming both, in print-config and at start; nothing else warns', async () => {
    const env = { ...PBL, POSTGRES_PASWORD: 'x', S3_BUKET: 'b', BACKUP_KEEP_DAY: '3', POSTGRES_SOMETHING_ELSE_ENTIRELY: 'y', HOME: '/root' };
    const { warnings } = loadConfig(env, { needSources: true });
    expect(warnings).toEqual([
      'BACKUP_KEEP_DAY: not a variable of backup-sidecar, ignored; did you mean BACKUP_KEEP_DAYS?',
      'POSTGRES_PASWORD: not a variable of backup-sidecar, ignored; did you mean POSTGRES_PASSWORD?',
      'S3_BUKET: not a variable of backup-sidecar, ignored; did you mean S3_BUCKET?',
      // PBL's README example sets -Z1: told once that it keeps pg_dump's slow compression.
      "POSTGRES_EXTRA_OPTS sets pg_dump's own compression (1), which wins over POSTGRES_COMPRESSION; remove it for zstd on every core, several times faster",
    ]);
    const printed = await runCli(['print-config'], { POSTGRES_PASWORD: 'x', MEDIA_PATHS: '/tmp', BACKUP_DIR: '/tmp/x' });
    expect(printed.stdout).toContain('warning: POSTGRES_PASWORD: not a variable of backup-sidecar, ignored; did you mean POSTGRES_PASSWORD?');
    const started = await runCli(['list'], { POSTGRES_PASWORD: 'x', BACKUP_DIR: '/tmp/bsc-none' });
    expect(started.stderr).toContain('did you mean POSTGRES_PASSWORD?');
  });
});

describe("postgres-backup-s3's environment, for real", () => {
  let pg: TestServer;
  let s3: TestS3;
  let work: string;
  beforeAll(async () => {
    [pg, s3] = await Promise.all([startPostgres(), startS3()]);
    await pg.sql('postgres', 'CREATE DATABASE dbname;');
    await pg.sql('dbname', "CREATE TABLE t (x text); INSERT INTO t VALUES ('plaintext-marker-7q');");
    work = await tempDir('compat');
  });
  afterAll(async () => {
    await Promise.all([pg?.stop(), s3?.stop()]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('backs up with its variable names; with PASSPHRASE the objects in S3 are encrypted (.age), never plaintext', async () => {
    const env = {
      ...PBS3,
      POSTGRES_HOST: pg.host,
      POSTGRES_PORT: String(pg.port),
      POSTGRES_USER: pg.user,
      POSTGRES_PASSWORD: pg.password,
      S3_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID!,
      S3_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY!,
      BACKUP_DIR: join(work, 'backups'),
    };
    const r = await runCli(['backup'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    const keys = (await s3.keys()).filter((k) => k.startsWith('backup/'));
    expect(keys.filter((k) => k.endsWith('/dbname.dump.zst.age'))).toHaveLength(1);
    expect(keys.filter((k) => /\.dump(\.zst)?$/.test(k))).toEqual([]);
    expect(r.stderr).not.toContain(env.S3_SECRET_ACCESS_KEY);
  });

  it("docker-postgres-backup-local's WEBHOOK_PRE_BACKUP_URL (at the start) and WEBHOOK_POST_BACKUP_URL (after a full success) are called", async () => {
    const calls: { path: string; status: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        calls.push({ path: req.url ?? '', status: (JSON.parse(body) as { status: string }).status });
        res.end();
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
    try {
      const env = { ...pg.env, POSTGRES_DB: 'dbname', BACKUP_DIR: join(work, 'pbl'), WEBHOOK_PRE_BACKUP_URL: `http://127.0.0.1:${port}/pre`, WEBHOOK_POST_BACKUP_URL: `http://127.0.0.1:${port}/post` };
      expect((await runCli(['backup'], env)).exitCode).toBe(0);
      expect(calls).toEqual([{ path: '/pre', status: 'start' }, { path: '/post', status: 'ok' }]);
      calls.length = 0;
      expect((await runCli(['backup'], { ...env, POSTGRES_PORT: '1' })).exitCode).toBe(1);
      expect(calls).toEqual([{ path: '/pre', status: 'start' }]);
    } finally {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });
});

describe('POSTGRES_DB=* (every database), for real', () => {
  let source: TestServer;
  let fresh: TestServer;
  let work: string;
  beforeAll(async () => {
    [source, fresh] = await Promise.all([startPostgres(), startPostgres()]);
    for (const db of ['shop', 'blog', 'scratch']) {
      await source.sql('postgres', `CREATE DATABASE ${db};`);
      await source.sql(db, `CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, ${db.length * 10});`);
    }
    await source.sql('postgres', "CREATE ROLE shop_owner LOGIN PASSWORD 'Shop-Owner-1'; ALTER DATABASE shop OWNER TO shop_owner;");
    work = await tempDir('all-dbs');
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), fresh?.stop()]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('dumps every database but the excluded ones, with the roles; the whole run restores onto a new server', async () => {
    const env = { ...source.env, POSTGRES_DB: '*', POSTGRES_EXCLUDE_DB: 'scratch', BACKUP_DIR: join(work, 'backups') };
    const r = await runCli(['backup'], env);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('backup-sidecar:'))).toEqual([]);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    const dir = r.stdout.trim().split(' ')[0]!;
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['blog.dump.zst', 'globals.sql', 'manifest.json', 'postgres.dump.zst', 'shop.dump.zst']);
    // A new server, with its own superuser password: everything comes back from the run.
    const restored = await runCli(['restore', dir, '--yes'], { ...fresh.env, POSTGRES_DB: '*', BACKUP_DIR: join(work, 'backups') });
    expect(restored.stderr.split('\n').filter((l) => l.startsWith('backup-sidecar:'))).toEqual([]);
    expect(restored.stderr).not.toMatch(/"level":50/);
    expect(restored.exitCode).toBe(0);
    expect(await fresh.sql('shop', 'SELECT count(*) FROM t;')).toBe('40');
    expect(await fresh.sql('blog', 'SELECT count(*) FROM t;')).toBe('40');
    expect(await fresh.sql('postgres', "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop';")).toBe('shop_owner');
    expect(await fresh.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'scratch';")).toBe('0');
  });
});
