import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, tempDir, until } from './support/cli.ts';
import { PG15_BIN, startPostgres, type TestServer } from './support/postgres-server.ts';

/**
 * The database swap of a restore, interrupted with SIGKILL at exact points: whatever instant the restore
 * dies, the app's database is there under its name and accepts connections, with the old data or the new.
 */
let pg: TestServer;
let work: string;
let env: Record<string, string>;

const notes = () => pg.sql('app', 'SELECT count(*) FROM notes;');
const leftovers = () => pg.sql('postgres', "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'app\\_\\_old\\_%';");

/** Starts `restore latest --yes` in its own process group, so that a kill takes psql and pg_restore with it. */
function startRestore(extra: Record<string, string> = {}): ResultPromise {
  return execa(process.execPath, [CLI, 'restore', 'latest', '--yes', '--no-safety-backup'], {
    env: { PATH: process.env.PATH!, ...env, ...extra },
    extendEnv: false,
    reject: false,
    detached: true,
  });
}

/** SIGKILL to the restore and its children; then its lock is removed rather than left to go stale (10 s). */
async function killGroup(child: ResultPromise): Promise<void> {
  process.kill(-child.pid!, 'SIGKILL');
  await child;
  await rm(join(env.BACKUP_DIR!, '.lock'), { recursive: true, force: true });
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes SELECT generate_series(1, 100);');
  work = await tempDir('swap');
  env = { ...pg.env, BACKUP_DIR: join(work, 'backups'), POSTGRES_DB: 'app' };
  expect((await runCli(['backup'], env)).exitCode).toBe(0);
  // The data now differs from the backup: "old" is 150 rows, the backup holds 100.
  await pg.sql('app', 'INSERT INTO notes SELECT generate_series(101, 150);');
});

afterAll(async () => {
  await pg?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the database swap is one transaction', () => {
  it('killed just before the swap runs (where ALLOW_CONNECTIONS false used to be committed), app stays connectable with the old data', async () => {
    // A psql that stops before running any script holding a RENAME, until told to go on.
    const bin = join(work, 'pause-bin');
    await mkdir(bin, { recursive: true });
    for (const tool of ['pg_dump', 'pg_restore', 'pg_dumpall']) {
      await writeFile(join(bin, tool), `#!/bin/sh\nexec ${join(PG15_BIN, tool)} "$@"\n`);
      await chmod(join(bin, tool), 0o755);
    }
    await writeFile(
      join(bin, 'psql'),
      `#!/bin/sh
case "$*" in *"-f -"*) ;; *) exec ${join(PG15_BIN, 'psql')} "$@";; esac
script=$(mktemp); cat > "$script"
if grep -q 'RENAME TO' "$script"; then touch ${join(bin, 'paused')}; while [ ! -e ${join(bin, 'go')} ]; do sleep 0.05; done; fi
exec ${join(PG15_BIN, 'psql')} "$@" < "$script"
`,
    );
    await chmod(join(bin, 'psql'), 0o755);
    const restore = startRestore({ PG_BIN_DIR: bin });
    await until('the restore to reach its swap', async () => (await stat(join(bin, 'paused')).catch(() => undefined)) ?? undefined);
    await killGroup(restore);
    expect(await notes()).toBe('150');
    expect(await pg.sql('postgres', "SELECT datallowconn FROM pg_database WHERE datname = 'app';")).toBe('t');
  });

  it('killed while the rename inside the transaction waits, app stays connectable with the old data and nothing is renamed', async () => {
    // Holds app's pg_database row: any ALTER DATABASE app … waits exactly there.
    const blocker = execa(join(PG15_BIN, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1'], {
      env: { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'postgres', PGAPPNAME: 'blocker' },
      stdin: 'pipe',
      reject: false,
    });
    blocker.stdin!.write("BEGIN; SELECT 1 FROM pg_database WHERE datname = 'app' FOR UPDATE;\n");
    await until('the blocker to hold the row', async () =>
      (await pg.sql('postgres', "SELECT 1 FROM pg_stat_activity WHERE application_name = 'blocker' AND state = 'idle in transaction';")) === '1' ? true : undefined,
    );
    const restore = startRestore();
    await until('the rename to wait for the row lock', async () =>
      (await pg.sql('postgres', "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER DATABASE%RENAME%';")) === '1' ? true : undefined,
    );
    await killGroup(restore);
    blocker.stdin!.end('ROLLBACK;\n\\q\n');
    await blocker;
    // The orphaned server session finishes its statement, finds its client gone, and rolls back.
    await until('the orphaned rename to end', async () =>
      (await pg.sql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER DATABASE%RENAME%' AND pid <> pg_backend_pid();")) === '0' ? true : undefined,
    );
    expect(await notes()).toBe('150');
    expect(await leftovers()).toBe('');
  });

  it('an uninterrupted restore swaps: the backup\'s data, no old copy left; a database named postgres restores in place', async () => {
    const r = await runCli(['restore', 'latest', '--yes', '--no-safety-backup'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(await notes()).toBe('100');
    expect(await leftovers()).toBe('');

    await pg.sql('postgres', 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (1);');
    const own = { ...pg.env, BACKUP_DIR: join(work, 'backups-postgres'), POSTGRES_DB: 'postgres' };
    expect((await runCli(['backup'], own)).exitCode).toBe(0);
    await pg.sql('postgres', 'DELETE FROM kept;');
    const inPlace = await runCli(['restore', 'latest', '--yes'], own);
    expect(inPlace.stderr).not.toMatch(/"level":50/);
    expect(inPlace.exitCode).toBe(0);
    expect(await pg.sql('postgres', 'SELECT count(*) FROM kept;')).toBe('1');
  });
});
