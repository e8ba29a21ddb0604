import { access, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { CLI, runCli, tempDir } from './support/cli.ts';

const base = { POSTGRES_HOST: 'db', POSTGRES_USER: 'postgres', POSTGRES_DB: 'app' };

describe('loadConfig', () => {
  it('applies defaults', () => {
    const { config, problems } = loadConfig(base);
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      postgres: { host: 'db', port: 5432, user: 'postgres', databases: ['app'], extraOpts: [], maintenanceDb: 'postgres', password: undefined },
      media: [],
      mediaCompression: 'gzip',
      backupDir: '/backups',
      label: undefined,
      logLevel: 'info',
      logFormat: 'json',
    });
  });

  it('parses lists, media specs and extra options', () => {
    const { config } = loadConfig({
      ...base,
      POSTGRES_DB: 'app, analytics,app',
      MEDIA_PATHS: 'uploads:/data/uploads/, /srv/site',
      MEDIA_EXCLUDE: '*.tmp, cache/*',
      POSTGRES_EXTRA_OPTS: '-Z 9 --exclude-table-data=public.big\\ table',
      BACKUP_DIR: '/b/',
    });
    expect(config?.postgres?.databases).toEqual(['app', 'analytics']);
    expect(config?.media).toEqual([
      { name: 'uploads', path: '/data/uploads' },
      { name: 'site', path: '/srv/site' },
    ]);
    expect(config?.mediaExclude).toEqual(['*.tmp', 'cache/*']);
    expect(config?.postgres?.extraOpts).toEqual(['-Z', '9', '--exclude-table-data=public.big table']);
    expect(config?.backupDir).toBe('/b');
  });

  it('splits a list without commas at spaces, like docker-postgres-backup-local', () => {
    expect(loadConfig({ ...base, POSTGRES_DB: 'a b  c' }).config?.postgres?.databases).toEqual(['a', 'b', 'c']);
    expect(loadConfig({ ...base, POSTGRES_DB: 'my db,' }).config?.postgres?.databases).toEqual(['my db']);
  });

  it('POSTGRES_COMPRESSION: zstd:3 by default; every level form; a -Z or --compress in POSTGRES_EXTRA_OPTS wins, with a warning', () => {
    const compression = (env: Record<string, string>) => loadConfig({ ...base, ...env }).config?.postgres?.compression;
    expect(compression({})).toEqual({ method: 'zstd', level: 3 });
    for (let level = 1; level <= 19; level++) expect(compression({ POSTGRES_COMPRESSION: `zstd:${level}` })).toEqual({ method: 'zstd', level });
    for (let level = 0; level <= 9; level++) expect(compression({ POSTGRES_COMPRESSION: `gzip:${level}` })).toEqual({ method: 'gzip', level });
    expect(compression({ POSTGRES_COMPRESSION: ' ZSTD ' })).toEqual({ method: 'zstd', level: 3 });
    expect(compression({ POSTGRES_COMPRESSION: 'gzip' })).toEqual({ method: 'gzip', level: undefined });
    expect(compression({ POSTGRES_COMPRESSION: 'none' })).toEqual({ method: 'none' });
    for (const [opts, setting] of [['-Z1', '1'], ['-Z 9', '9'], ['--compress=gzip:4', 'gzip:4'], ['--compress 0', '0']] as const) {
      const loaded = loadConfig({ ...base, POSTGRES_EXTRA_OPTS: opts });
      expect(loaded.config?.postgres?.compression).toEqual({ method: 'pg_dump', setting });
      expect(loaded.config?.postgres?.safetyCompression).toEqual({ method: 'zstd', level: 3 });
      expect(loaded.warnings).toContain(`POSTGRES_EXTRA_OPTS sets pg_dump's own compression (${setting}), which wins over POSTGRES_COMPRESSION; remove it for zstd on every core, several times faster`);
    }
    expect(loadConfig({ ...base, POSTGRES_EXTRA_OPTS: '--exclude-table=z' }).warnings).toEqual([]);
  });

  it.each(['lz4', 'zstd:0', 'zstd:20', 'gzip:10', 'none:1', 'zstd:', 'zstd:x'])('POSTGRES_COMPRESSION=%s gives one clear line', (value) => {
    expect(loadConfig({ ...base, POSTGRES_COMPRESSION: value }).problems).toEqual([
      `POSTGRES_COMPRESSION="${value}": expected zstd[:1-19], gzip[:0-9] or none (example: POSTGRES_COMPRESSION=zstd:6)`,
    ]);
  });

  it('-Fc and --format=custom in POSTGRES_EXTRA_OPTS are accepted and dropped (the format is custom anyway); other formats are refused', () => {
    for (const opts of ['-Fc', '-F c', '-Fcustom', '--format=custom', '--format c', '--format=c'] ) {
      const loaded = loadConfig({ ...base, POSTGRES_EXTRA_OPTS: `${opts} --no-comments` });
      expect(loaded.problems, opts).toEqual([]);
      expect(loaded.config?.postgres?.extraOpts, opts).toEqual(['--no-comments']);
    }
    for (const opts of ['-Fp', '-F d', '--format=plain', '--format=tar', '-Ft']) {
      expect(loadConfig({ ...base, POSTGRES_EXTRA_OPTS: opts }).problems[0], opts).toMatch(/^POSTGRES_EXTRA_OPTS: (-F|--format) is set by backup-sidecar itself; remove it/);
    }
  });

  it('media alone is enough', () => {
    expect(loadConfig({ MEDIA_PATHS: '/data/uploads' }).problems).toEqual([]);
  });

  it.each([
    [{ POSTGRES_PORT: 'abc' }, /^POSTGRES_PORT="abc": expected a whole number from 1 to 65535 \(example: POSTGRES_PORT=5432\)$/],
    [{ POSTGRES_PORT: '70000' }, /^POSTGRES_PORT="70000": expected a whole number/],
    [{ POSTGRES_PORT: '5.5' }, /^POSTGRES_PORT="5.5": expected a whole number/],
    [{ POSTGRES_HOST: '' }, /^POSTGRES_HOST: required when POSTGRES_DB is set \(example: POSTGRES_HOST=db\)$/],
    [{ POSTGRES_USER: undefined }, /^POSTGRES_USER: required when POSTGRES_DB is set/],
    [{ POSTGRES_DB: '', MEDIA_PATHS: '' }, /^POSTGRES_DB, MEDIA_PATHS: nothing to back up/],
    [{ MEDIA_PATHS: 'relative/dir' }, /^MEDIA_PATHS="relative\/dir": "relative\/dir" is not an absolute path \(example: MEDIA_PATHS=/],
    [{ MEDIA_PATHS: 'a b:/x' }, /^MEDIA_PATHS=.*needs a name of letters/],
    [{ MEDIA_PATHS: '/x/up,/y/up' }, /^MEDIA_PATHS=.*the name "up" is used twice/],
    [{ MEDIA_COMPRESSION: 'bzip2' }, /^MEDIA_COMPRESSION="bzip2": expected gzip or zstd \(example: MEDIA_COMPRESSION=zstd\)$/],
    [{ BACKUP_DIR: 'backups' }, /^BACKUP_DIR="backups": BACKUP_DIR must be an absolute path/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL="loud": expected one of trace/],
    [{ LOG_FORMAT: 'xml' }, /^LOG_FORMAT="xml": expected json or pretty/],
    [{ PG_BIN_DIR: 'bin' }, /^PG_BIN_DIR="bin": PG_BIN_DIR must be an absolute path/],
    [{ POSTGRES_EXTRA_OPTS: '-f /tmp/x' }, /^POSTGRES_EXTRA_OPTS: -f is set by backup-sidecar itself; remove it/],
    [{ POSTGRES_EXTRA_OPTS: '--format=plain' }, /^POSTGRES_EXTRA_OPTS: --format is set by backup-sidecar itself/],
    [{ POSTGRES_EXTRA_OPTS: "--exclude-table='a b'" }, /^POSTGRES_EXTRA_OPTS: quotes are passed to pg_dump as they are/],
    [{ POSTGRES_PASSWORD: 'x', POSTGRES_PASSWORD_FILE: '/run/secrets/pw' }, /^POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are both set: keep one of them$/],
    [{ POSTGRES_PASSWORD_FILE: '/nonexistent/pw' }, /^POSTGRES_PASSWORD_FILE="\/nonexistent\/pw": cannot read the file \(ENOENT\); mount the secret there or fix the path$/],
  ])('%j gives one clear line', (override, expected) => {
    const { config, problems } = loadConfig({ ...base, ...override } as Record<string, string | undefined>);
    expect(config).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('reports every problem at once, one line each, and never shows a secret', () => {
    const { problems } = loadConfig({ POSTGRES_PORT: 'x', LOG_FORMAT: 'y', MEDIA_COMPRESSION: 'z', POSTGRES_DB: 'a' });
    expect(problems).toHaveLength(3);
    for (const p of problems) expect(p).not.toContain('\n');
  });

  it('reads _FILE secrets and drops one trailing newline', async () => {
    const dir = await tempDir('cfg');
    await writeFile(join(dir, 'pw'), 's3cret with space\n');
    await writeFile(join(dir, 'db'), 'app,other\n');
    const { config } = loadConfig({ ...base, POSTGRES_PASSWORD_FILE: join(dir, 'pw'), POSTGRES_DB_FILE: join(dir, 'db'), POSTGRES_DB: undefined });
    expect(config?.postgres?.password).toBe('s3cret with space');
    expect(config?.postgres?.databases).toEqual(['app', 'other']);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('the CLI on bad configuration', () => {
  it('exits 2 with one line per problem and no stack trace, before doing anything', async () => {
    const dir = await tempDir('cfgcli');
    const r = await runCli(['backup'], { POSTGRES_DB: 'app', POSTGRES_PORT: 'nope', BACKUP_DIR: join(dir, 'never-made') });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      'backup-sidecar: POSTGRES_PORT="nope": expected a whole number from 1 to 65535 (example: POSTGRES_PORT=5432)',
    ]);
    await expect(access(join(dir, 'never-made'))).rejects.toThrow(/ENOENT/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    await rm(dir, { recursive: true, force: true });
  });

  it('a BACKUP_DIR that does not exist (a volume not mounted) is said so, not "no runs yet"', async () => {
    const missing = join(await tempDir('cfg-missing'), 'not-mounted');
    for (const args of [['list'], ['restore', 'latest', '--yes'], ['verify'], ['verify', '--restore']]) {
      const r = await runCli(args, { BACKUP_DIR: missing });
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`backup-sidecar: BACKUP_DIR ${missing} does not exist: mount the backups volume there, or set BACKUP_DIR to where it is mounted`);
    }
    expect(await readdir(join(missing, '..'))).toEqual([]);
  });

  it('commands that only read the volume need no POSTGRES_DB or MEDIA_PATHS; backup and daemon do', async () => {
    const dir = await tempDir('cfgcli');
    const list = await runCli(['list'], { BACKUP_DIR: dir });
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^no backup runs in /);
    expect((await runCli(['status'], { BACKUP_DIR: dir })).exitCode).toBe(0);
    for (const command of ['backup', 'daemon']) {
      const r = await runCli([command], { BACKUP_DIR: dir });
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/POSTGRES_DB, MEDIA_PATHS: nothing to back up/);
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 2 on an unknown command or flag, with a suggestion, in one line', async () => {
    const typo = await runCli(['bakup'], {});
    expect(typo.exitCode).toBe(2);
    expect(typo.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^backup-sidecar: unknown command "bakup"; did you mean "backup"\?/)]);
    const r = await runCli(['list', '--jsn'], { MEDIA_PATHS: '/x', BACKUP_DIR: '/tmp' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--jsn'; did you mean --json\? \(see backup-sidecar list --help\)/);
    const extra = await runCli(['status', 'now'], {});
    expect(extra.exitCode).toBe(2);
    expect(extra.stderr).toMatch(/status takes no arguments \(example: backup-sidecar status\)/);
  });

  it('on a Node.js older than 22.12: one line naming the version, exit 2, never a TypeError', async () => {
    for (const version of ['20.20.2', '22.11.0']) {
      // The version as an older Node reports it (process.versions set before the CLI loads).
      const fake = `data:text/javascript,Object.defineProperty(process,'versions',{value:{...process.versions,node:'${version}'}})`;
      const r = await execa(process.execPath, ['--import', fake, CLI, 'list'], { reject: false, env: { PATH: process.env.PATH! }, extendEnv: false });
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trim()).toBe(`backup-sidecar: Node.js ${version} is too old: it needs 22.12 or newer (24 LTS is what the image ships)`);
    }
  });

  it('one line per error on stderr (no JSON twin); LOG_FORMAT=pretty logs one human line per event', async () => {
    const dir = await tempDir('one-line');
    const env = { POSTGRES_HOST: '127.0.0.1', POSTGRES_PORT: '1', POSTGRES_USER: 'x', POSTGRES_DB: 'app', BACKUP_DIR: dir };
    const json = await runCli(['backup'], env);
    expect(json.exitCode).toBe(1);
    expect(json.stderr.split('\n').filter((l) => l.includes('Connection refused'))).toEqual([expect.stringMatching(/^backup-sidecar: cannot connect to PostgreSQL at 127\.0\.0\.1:1/)]);
    const pretty = await runCli(['backup'], { ...env, LOG_FORMAT: 'pretty', BACKUP_PRE_COMMAND: 'echo hello' });
    expect(pretty.stderr).not.toContain('{"level"');
    expect(pretty.stderr).toMatch(/^\[[^\]]+\] INFO: hello \{"hook":"BACKUP_PRE_COMMAND"\}$/m);
    await rm(dir, { recursive: true, force: true });
  });

  it('--help and help <command> work for every command before any configuration is read, with its options and an example', async () => {
    const { COMMANDS } = await import('../src/commands/table.ts');
    for (const command of COMMANDS) {
      for (const args of [[command.name, '--help'], ['help', command.name]]) {
        const r = await runCli(args, { POSTGRES_PORT: 'not-a-port' });
        expect(r.exitCode).toBe(0);
        expect(r.stdout).toContain(`Usage: backup-sidecar ${command.name}`);
        expect(r.stdout).toMatch(/Example: backup-sidecar /);
        for (const option of Object.keys(command.options)) expect(r.stdout).toContain(`--${option}`);
      }
    }
    const all = await runCli(['--help'], {});
    expect(all.exitCode).toBe(0);
    for (const command of COMMANDS) expect(all.stdout).toContain(`  ${command.name} `);
  });

  it('print-config masks secrets and lists problems', async () => {
    const r = await runCli(['print-config'], { POSTGRES_DB: 'app', POSTGRES_HOST: 'db', POSTGRES_PASSWORD: 'hunter2-very-secret' });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).not.toContain('hunter2-very-secret');
    expect(r.stdout).toMatch(/POSTGRES_PASSWORD\s+\*{8} \(set\)\s+env/);
    expect(r.stdout).toMatch(/POSTGRES_PORT\s+5432\s+default/);
    // Durations and sizes the way a person writes them.
    expect(r.stdout).toMatch(/LOCK_WAIT\s+10m\s+default/);
    expect(r.stdout).toMatch(/DISK_FREE_MIN\s+1GiB\s+default/);
    expect(r.stdout).toMatch(/S3_PART_SIZE\s+5MiB\s+default/);
    expect(r.stdout).toMatch(/1 problem\(s\):\n {2}POSTGRES_USER: required/);
    const ok = await runCli(['print-config'], { POSTGRES_DB: 'app', POSTGRES_HOST: 'db', POSTGRES_USER: 'u' });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toMatch(/no problems found/);
  });
});

describe('daemon configuration', () => {
  it('defaults', () => {
    const config = loadConfig({ MEDIA_PATHS: '/data' }).config!;
    expect(config.daemon).toEqual({
      schedule: '@daily',
      onStart: false,
      validateOnStart: true,
      shutdownTimeoutMs: 60_000,
      healthMaxAgeMs: undefined,
      healthPort: undefined,
      verifySchedule: undefined,
      requireVerify: false,
      requireOffsite: false,
    });
    // With S3, a run that is not offsite is unhealthy unless turned off.
    expect(loadConfig({ MEDIA_PATHS: '/data', S3_BUCKET: 'backups' }).config!.daemon.requireOffsite).toBe(true);
    expect(loadConfig({ MEDIA_PATHS: '/data', S3_BUCKET: 'backups', HEALTHCHECK_REQUIRE_OFFSITE: 'false' }).config!.daemon.requireOffsite).toBe(false);
    expect(config.verify).toEqual({ postgres: undefined, sql: undefined });
    expect(config.timeZone).toBe('UTC');
    expect(loadConfig({ MEDIA_PATHS: '/data', SCHEDULE: '*/10 * * * * *', HEALTHCHECK_MAX_AGE: '26h', BACKUP_ON_START: 'yes' }).config!.daemon).toMatchObject({
      schedule: '*/10 * * * * *',
      healthMaxAgeMs: 26 * 3_600_000,
      onStart: true,
    });
  });

  it('the drill server: the backed-up one by default; VERIFY_POSTGRES_* never inherit the password', () => {
    const base = { POSTGRES_DB: 'app', POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_PASSWORD: 'prod-secret' };
    expect(loadConfig(base).config!.verify.postgres).toMatchObject({ host: 'db', port: 5432, user: 'u', password: 'prod-secret' });
    expect(loadConfig({ ...base, VERIFY_POSTGRES_HOST: 'scratch', VERIFY_SQL: 'SELECT true' }).config!.verify).toMatchObject({
      postgres: { host: 'scratch', port: 5432, user: 'u', password: undefined, databases: ['app'] },
      sql: 'SELECT true',
    });
  });

  it.each([
    [{ SCHEDULE: '61 * * * *' }, /^SCHEDULE="61 \* \* \* \*": expected a cron expression/],
    [{ VERIFY_SCHEDULE: 'weekly' }, /^VERIFY_SCHEDULE="weekly": expected a cron expression/],
    [{ HEALTHCHECK_REQUIRE_VERIFY: 'maybe' }, /^HEALTHCHECK_REQUIRE_VERIFY="maybe": expected true or false/],
    [{ VERIFY_POSTGRES_PORT: 'x' }, /^VERIFY_POSTGRES_PORT="x": expected a whole number from 1 to 65535/],
    [{ SHUTDOWN_TIMEOUT: 'forever' }, /^SHUTDOWN_TIMEOUT="forever": expected a duration/],
    [{ HEALTHCHECK_MAX_AGE: '10ms' }, /^HEALTHCHECK_MAX_AGE="10ms": expected a duration of at least 1 second/],
    [{ HEALTHCHECK_PORT: '0' }, /^HEALTHCHECK_PORT="0": expected a whole number from 1 to 65535/],
    [{ BACKUP_ON_START: 'sometimes' }, /^BACKUP_ON_START="sometimes": expected true or false/],
    [{ WEBHOOK_URL: 'ftp://x/y' }, /^WEBHOOK_URL: expected an http\(s\) URL/],
    [{ BACKUP_FAKE_NOW: 'yesterday' }, /^BACKUP_FAKE_NOW="yesterday": expected an ISO time/],
    [{ DISK_FREE_MIN: 'lots' }, /^DISK_FREE_MIN="lots": expected a size/],
  ])('%j gives one clear line', (override, expected) => {
    const { config, problems } = loadConfig({ MEDIA_PATHS: '/data', ...override });
    expect(config).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });
});
