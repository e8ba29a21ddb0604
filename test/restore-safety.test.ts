import { chmod, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, filesBelow, runCli, tempDir, until } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { PG15_BIN, startPostgres, type TestServer } from './support/postgres-server.ts';

/**
 * Nothing a restore replaces is lost: tables a dump lacks are not dropped silently, RESTORE_SAFETY says
 * what is kept (a dump, or the database itself for an instant rollback), and a restore killed at any
 * point leaves the database and the media folder usable, finished or rolled back by the next command.
 */
let pg: TestServer;
let work: string;
let env: Record<string, string>;

const count = (table: string) => pg.sql('app', `SELECT count(*) FROM ${table};`);
const databases = (like: string) => pg.sql('postgres', `SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database WHERE datname LIKE '${like}';`);
const runsOf = async (dir: string, tier: string) => (await readdir(join(dir, tier)).catch(() => [] as string[])).sort();

beforeAll(async () => {
  pg = await startPostgres();
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', `CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes SELECT generate_series(1, 100);
    CREATE TABLE audit (x int); INSERT INTO audit SELECT generate_series(1, 10);
    CREATE TABLE sessions (x int); INSERT INTO sessions SELECT generate_series(1, 5);`);
  work = await tempDir('safety');
  env = { ...pg.env, POSTGRES_DB: 'app' };
});

afterAll(async () => {
  await execa('pkill', ['-f', work], { reject: false });
  await pg?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('tables the dump lacks are never dropped silently', () => {
  it('a dump made with --exclude-table or --exclude-table-data: restore refuses (exit 1) naming them, nothing touched', async () => {
    const dir = join(work, 'partial-dump');
    const local = { ...env, BACKUP_DIR: dir, POSTGRES_EXTRA_OPTS: '--exclude-table=public.audit --exclude-table-data=public.sessions' };
    expect((await runCli(['backup'], local)).exitCode).toBe(0);
    await pg.sql('app', 'DELETE FROM notes WHERE id > 50;');
    const r = await runCli(['restore', 'latest', '--yes'], local);
    expect(r.exitCode).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('backup-sidecar:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/database app has 2 table\(s\) that app.dump.zst lacks.*public.audit \(not in the dump\), public.sessions \(its data is not in the dump\).*--allow-missing-tables/);
    expect(await count('notes')).toBe('50');
    expect(await runsOf(dir, 'pre-restore')).toEqual([]);
  });

  it('--allow-missing-tables restores; the safety backup holds the whole database, POSTGRES_EXTRA_OPTS or not', async () => {
    const dir = join(work, 'partial-dump');
    const local = { ...env, BACKUP_DIR: dir, POSTGRES_EXTRA_OPTS: '--exclude-table=public.audit --exclude-table-data=public.sessions' };
    const r = await runCli(['restore', 'latest', '--yes', '--allow-missing-tables'], local);
    expect(r.exitCode).toBe(0);
    expect(await count('notes')).toBe('100');
    expect(await pg.sql('app', "SELECT count(*) FROM pg_tables WHERE tablename = 'audit';")).toBe('0');
    expect(await count('sessions')).toBe('0');
    // Undo: the safety backup brings audit and sessions back with their rows.
    const [safety] = await runsOf(dir, 'pre-restore');
    const undo = await runCli(['restore', join(dir, 'pre-restore', safety!), '--yes', '--no-safety-backup'], local);
    expect(undo.exitCode).toBe(0);
    expect(await count('audit')).toBe('10');
    expect(await count('sessions')).toBe('5');
    expect(await count('notes')).toBe('50');
    await pg.sql('app', 'INSERT INTO notes SELECT generate_series(51, 100);');
  });

  it('a --schema-only backup fails its restore drill: it holds no data', async () => {
    const dir = join(work, 'schema-only');
    const local = { ...env, BACKUP_DIR: dir, POSTGRES_EXTRA_OPTS: '--schema-only' };
    expect((await runCli(['backup'], local)).exitCode).toBe(0);
    const drill = await runCli(['verify', '--restore'], local);
    expect(drill.exitCode).toBe(1);
    expect(drill.stdout).toMatch(/FAIL {2}restore app.dump.zst: the dump holds 3 table\(s\) but the data of none \(made with --schema-only\?\)/);
  });
});

describe('database-level properties', () => {
  it('encoding, locale, settings, per-role settings and the comment come back with the dump; what the server refuses is named', async () => {
    await pg.sql('postgres', `CREATE DATABASE props TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C';
      CREATE ROLE props_reader; CREATE ROLE props_gone;
      ALTER DATABASE props SET work_mem = '7MB'; ALTER DATABASE props SET search_path = public, "My Schema";
      ALTER ROLE props_reader IN DATABASE props SET statement_timeout = '5s';
      ALTER ROLE props_gone IN DATABASE props SET statement_timeout = '6s';
      COMMENT ON DATABASE props IS 'the props db, 100% real';`);
    await pg.sql('props', 'CREATE TABLE t (x int); INSERT INTO t VALUES (1);');
    const local = { ...env, POSTGRES_DB: 'props', BACKUP_DIR: join(work, 'props') };
    expect((await runCli(['backup'], local)).exitCode).toBe(0);
    // The database is lost, and made anew by hand with the server's defaults; one role is gone too.
    await pg.sql('postgres', 'DROP DATABASE props; DROP ROLE props_gone; CREATE DATABASE props;');
    const r = await runCli(['restore', 'latest', '--yes', '--no-safety-backup'], local);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/5 database setting\(s\) and comment carried over; NOT carried over: ALTER ROLE props_gone IN DATABASE props SET statement_timeout TO '6s' \(.*props_gone.*does not exist\)/);
    const get = (sql: string) => pg.sql('postgres', sql);
    expect(await get("SELECT pg_encoding_to_char(encoding) || ' ' || datcollate FROM pg_database WHERE datname = 'props';")).toBe('LATIN1 C');
    expect(await get("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'props';")).toBe('the props db, 100% real');
    const settings = await get("SELECT string_agg(coalesce(r.rolname, '-') || ':' || array_to_string(s.setconfig, ';'), ' | ' ORDER BY 1) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = 'props';");
    expect(settings).toBe('-:work_mem=7MB;search_path=public, "My Schema" | props_reader:statement_timeout=5s');
    await pg.sql('postgres', 'DROP DATABASE props; DROP ROLE props_reader;');
  });
});

describe('RESTORE_SAFETY', () => {
  const dir = () => join(work, 'keep');
  const local = () => ({ ...env, BACKUP_DIR: dir(), RESTORE_SAFETY: 'keep', BACKUP_KEEP_PRE_RESTORE: '1' });

  it('keep: no dump is taken; the replaced database is kept as app__pre_restore_<id>, listed by status', async () => {
    expect((await runCli(['backup'], local())).exitCode).toBe(0);
    await pg.sql('app', 'DELETE FROM notes WHERE id > 70;');
    const r = await runCli(['restore', 'latest', '--yes'], local());
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/replaced database kept as app__pre_restore_\d{8}T\d{6}Z/);
    expect(await count('notes')).toBe('100');
    expect(await runsOf(dir(), 'pre-restore')).toEqual([]);
    const kept = await databases('app\\_\\_pre\\_restore\\_%');
    expect(kept).toMatch(/^app__pre_restore_\d{8}T\d{6}Z$/);
    expect(await pg.sql(kept, 'SELECT count(*) FROM notes;')).toBe('70');
    expect((await runCli(['status'], local())).stdout).toContain(`kept by RESTORE_SAFETY=keep (restore --rollback <db> swaps one back): ${kept} (of app)`);
  });

  it('restore --rollback app swaps the kept copy back and keeps what it replaced; BACKUP_KEEP_PRE_RESTORE bounds the copies', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // a new second: the next kept copy gets its own name
    const r = await runCli(['restore', '--rollback', 'app', '--yes'], local());
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/rolled back app to app__pre_restore_\S+; what it replaced is kept as app__pre_restore_/);
    expect(await count('notes')).toBe('70');
    // One copy kept (BACKUP_KEEP_PRE_RESTORE=1): the newest, holding the restored data.
    const kept = await databases('app\\_\\_pre\\_restore\\_%');
    expect(kept.split(',')).toHaveLength(1);
    expect(await pg.sql(kept, 'SELECT count(*) FROM notes;')).toBe('100');
    await pg.sql('app', 'INSERT INTO notes SELECT generate_series(71, 100);');
  });

  it('a rollback with no kept copy, or a bad RESTORE_SAFETY, fails in one line', async () => {
    const none = await runCli(['restore', '--rollback', 'nosuchdb', '--yes'], local());
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/no kept copy of database nosuchdb on the server/);
    const bad = await runCli(['restore', 'latest', '--yes'], { ...local(), RESTORE_SAFETY: 'maybe' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/RESTORE_SAFETY="maybe": expected dump, keep or none/);
  });
});

describe('a restore killed at any point leaves something usable, and the next command cleans up', () => {
  it('killed (-9) during pg_restore: the scratch database is listed by status, then dropped by the next backup, which says so', async () => {
    const dir = join(work, 'killed');
    const local = { ...env, BACKUP_DIR: dir };
    expect((await runCli(['backup'], local)).exitCode).toBe(0);
    const bin = await wrapperBin(join(work, 'hold-restore'), { hold: { tool: 'pg_restore', when: '--jobs' } });
    const child = execa(process.execPath, [CLI, 'restore', 'latest', '--yes', '--no-safety-backup'], { env: { PATH: process.env.PATH!, ...local, PG_BIN_DIR: bin }, extendEnv: false, reject: false, detached: true });
    await until('pg_restore to be held', async () => ((await readdir(bin)).includes('pg_restore.held') ? true : undefined));
    process.kill(-child.pid!, 'SIGKILL');
    await child;
    await rm(join(dir, '.lock'), { recursive: true, force: true });
    expect(await count('notes')).toBe('100');
    const scratch = await databases('app\\_\\_restore\\_%');
    expect(scratch).toMatch(/^app__restore_[0-9a-z]+_[0-9a-f]{8}$/);
    expect((await runCli(['status'], local)).stdout).toMatch(new RegExp(`scratch databases of interrupted or running restores and drills: ${scratch} \\(`));
    const next = await runCli(['backup'], local);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/dropped the scratch database of an interrupted restore/);
    expect(await databases('app\\_\\_restore\\_%')).toBe('');
  });

  it('a drill killed (-9) during its pg_restore: its scratch database is dropped by the next backup', async () => {
    const dir = join(work, 'killed'); // has a run
    const local = { ...env, BACKUP_DIR: dir };
    const bin = await wrapperBin(join(work, 'hold-drill'), { hold: { tool: 'pg_restore', when: '--no-acl' } });
    const child = execa(process.execPath, [CLI, 'verify', '--restore'], { env: { PATH: process.env.PATH!, ...local, PG_BIN_DIR: bin }, extendEnv: false, reject: false, detached: true });
    await until('the drill\'s pg_restore to be held', async () => ((await readdir(bin)).includes('pg_restore.held') ? true : undefined));
    process.kill(-child.pid!, 'SIGKILL');
    await child;
    await rm(join(dir, '.lock'), { recursive: true, force: true });
    expect(await databases('backup\\_sidecar\\_drill\\_%')).toMatch(/^backup_sidecar_drill_[0-9a-z]+_[0-9a-f]{8}$/);
    const next = await runCli(['backup'], local);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/dropped the scratch database of an interrupted restore or drill/);
    expect(await databases('backup\\_sidecar\\_drill\\_%')).toBe('');
  });

  it('a scratch database someone is connected to is left alone', async () => {
    const name = `app__restore_${Math.floor(Date.now() / 1000 - 3600).toString(36)}_deadbeef`;
    await pg.sql('postgres', `CREATE DATABASE "${name}";`);
    const holder = execa(join(PG15_BIN, 'psql'), ['-X', '-q'], {
      env: { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: name },
      stdin: 'pipe',
      reject: false,
    });
    holder.stdin!.write('SELECT 1;\n');
    await until('the session', async () => ((await pg.sql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = '${name}';`)) === '1' ? true : undefined));
    const r = await runCli(['backup'], { ...env, BACKUP_DIR: join(work, 'killed') });
    expect(r.exitCode).toBe(0);
    expect(await databases(name)).toBe(name);
    holder.stdin!.end('\\q\n');
    await holder;
    // No one connected, an hour old: the next command drops it.
    expect((await runCli(['backup'], { ...env, BACKUP_DIR: join(work, 'killed') })).exitCode).toBe(0);
    expect(await databases(name)).toBe('');
  });

  it('a scratch database this user may not drop (another owner) is reported, and the backup still succeeds', async () => {
    const name = `app__restore_${Math.floor(Date.now() / 1000 - 3600).toString(36)}_0badf00d`;
    await pg.sql('postgres', `CREATE ROLE lowly LOGIN PASSWORD 'Lowly-Pass-1'; CREATE DATABASE lowlydb OWNER lowly; CREATE DATABASE "${name}";`);
    const r = await runCli(['backup'], { ...env, POSTGRES_USER: 'lowly', POSTGRES_PASSWORD: 'Lowly-Pass-1', POSTGRES_DB: 'lowlydb', BACKUP_DIR: join(work, 'lowly') });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/cannot drop the scratch database of an interrupted restore; drop it by hand/);
    expect(await databases(name)).toBe(name);
    await pg.sql('postgres', `DROP DATABASE "${name}"; DROP DATABASE lowlydb; DROP ROLE lowly;`);
  });

  describe('the media swap', () => {
    let media: string;
    let dir: string;
    let local: Record<string, string>;
    let first: string;
    const listing = async () => (await filesBelow(media)).join(',');

    beforeAll(async () => {
      media = join(work, 'uploads');
      dir = join(work, 'media-backups');
      await mkdir(join(media, 'sub'), { recursive: true });
      await writeFile(join(media, 'a.txt'), 'new a');
      await writeFile(join(media, 'sub/b.txt'), 'new b');
      local = { ...pg.env, BACKUP_DIR: dir, MEDIA_PATHS: `uploads:${media}` };
      expect((await runCli(['backup'], local)).exitCode).toBe(0);
      first = (await filesBelow(dir)).find((f) => f.endsWith('manifest.json'))!.split('/')[1]!;
    });

    /** The app changes the folder after the backup: "old" content, which a restore replaces. */
    async function oldContent(): Promise<void> {
      await rm(media, { recursive: true, force: true });
      await mkdir(media);
      await writeFile(join(media, 'a.txt'), 'old a');
      await writeFile(join(media, 'c.txt'), 'old c');
    }

    it('killed (-9) while tar unpacks: the next backup rolls back (old content, no staging folder) and does not archive the staging folder', async () => {
      await oldContent();
      const bin = join(work, 'hold-tar');
      await mkdir(bin, { recursive: true });
      const tar = (await execa('sh', ['-c', 'command -v tar'])).stdout;
      await writeFile(join(bin, 'tar'), `#!/bin/sh\ncase "$*" in *--extract*) touch ${bin}/held; while [ ! -e ${bin}/go ]; do sleep 0.05; done;; esac\nexec ${tar} "$@"\n`);
      await chmod(join(bin, 'tar'), 0o755);
      const child = execa(process.execPath, [CLI, 'restore', first, '--yes', '--no-safety-backup'], { env: { ...local, PATH: `${bin}:${process.env.PATH!}` }, extendEnv: false, reject: false, detached: true });
      await until('tar to be held', async () => ((await readdir(bin)).includes('held') ? true : undefined));
      expect((await readdir(media)).some((n) => n.startsWith('.backup-sidecar-restore-'))).toBe(true);
      process.kill(-child.pid!, 'SIGKILL');
      await child;
      await rm(join(dir, '.lock'), { recursive: true, force: true });
      const r = await runCli(['backup'], local);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/interrupted media restore rolled back/);
      expect(await listing()).toBe('a.txt,c.txt');
      expect(await readFile(join(media, 'a.txt'), 'utf8')).toBe('old a');
      const newest = (await runsOf(dir, 'daily')).at(-1) ?? (await runsOf(dir, 'yearly')).at(-1);
      const tier = (await runsOf(dir, 'daily')).length > 0 ? 'daily' : 'yearly';
      const members = (await execa('tar', ['--list', '--gzip', `--file=${join(dir, tier, newest!, 'uploads.tar.gz')}`])).stdout;
      expect(members).not.toMatch(/backup-sidecar-restore/);
    });

    for (const [phase, moved, expected, words] of [
      ['aside', 1, 'a.txt,c.txt', 'rolled back'],
      ['in', 1, 'a.txt,sub/b.txt', 'completed'],
    ] as const) {
      it(`killed in phase "${phase}" after ${moved} entry moved: the next locked command ${words} the swap`, async () => {
        // The on-disk state at that instant: a journal, a staging folder with the new entries, an aside
        // folder with what was moved so far.
        await oldContent();
        const staging = join(media, '.backup-sidecar-restore-0000beef');
        const aside = join(media, '.backup-sidecar-old-0000beef');
        await mkdir(join(staging, 'sub'), { recursive: true });
        await writeFile(join(staging, 'a.txt'), 'new a');
        await writeFile(join(staging, 'sub/b.txt'), 'new b');
        await mkdir(aside);
        if (phase === 'aside') {
          await execa('mv', [join(media, 'c.txt'), aside]); // 1 of 2 old entries moved aside
        } else {
          await execa('mv', [join(media, 'a.txt'), join(media, 'c.txt'), aside]); // all old ones aside
          await execa('mv', [join(staging, 'sub'), media]); // 1 of 2 new entries moved in
        }
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, '.restore-journal.json'), JSON.stringify({ databases: [], folders: [{ target: media, staging, aside, phase }] }));
        const r = await runCli(['prune'], local);
        expect(r.exitCode).toBe(0);
        expect(r.stderr).toMatch(new RegExp(`interrupted media restore ${words}`));
        expect(await listing()).toBe(expected);
        expect(await readFile(join(media, 'a.txt'), 'utf8')).toBe(phase === 'aside' ? 'old a' : 'new a');
        expect(await readdir(dir)).not.toContain('.restore-journal.json');
      });
    }

    it('an uninterrupted restore leaves exactly the archive, no journal, no staging or aside folder', async () => {
      await oldContent();
      const r = await runCli(['restore', first, '--yes', '--no-safety-backup'], local);
      expect(r.exitCode).toBe(0);
      expect(await listing()).toBe('a.txt,sub/b.txt');
      expect((await readdir(media)).filter((n) => n.startsWith('.'))).toEqual([]);
      expect(await readdir(dir)).not.toContain('.restore-journal.json');
    });
  });
});
