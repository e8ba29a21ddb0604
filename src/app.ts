import { notAfterOf } from './clock.ts';
import type { Config, MediaFolder, RetentionPolicy } from './config/config.ts';
import { RunError, UsageError } from './errors.ts';
import { query } from './pg/psql.ts';
import type { Logger } from './log.ts';
import type { RetentionOptions } from './retention/policy.ts';
import type { RunTrust } from './volume/runs.ts';
import { GlobalsSource } from './kinds/globals/dumpall.ts';
import { MediaSource } from './kinds/media/tarball.ts';
import { PostgresSource } from './kinds/postgres/dump.ts';
import { connectServer, type PgServer } from './pg/server.ts';
import type { BackupSource } from './kinds/source.ts';

/**
 * The composition root: the one place that turns configuration into concrete sources. With
 * POSTGRES_DB=*, the databases are asked of the server at each run (templates and POSTGRES_EXCLUDE_DB
 * aside), and the roles come too.
 */
export async function buildSources(config: Config, log: Logger): Promise<{ sources: BackupSource[]; server: PgServer | undefined }> {
  const sources: BackupSource[] = [];
  let server: PgServer | undefined;
  const pg = config.postgres;
  if (pg !== undefined) {
    server = await connectServer(pg, pg.all ? pg.maintenanceDb : pg.databases[0]!);
    log.info({ server: server.serverVersion, client: server.client.binDir, why: server.clientChoice }, 'PostgreSQL client chosen');
    const databases = pg.all ? await connectableDatabases(server, pg.maintenanceDb, pg.exclude) : pg.databases;
    if (pg.all) log.info({ databases, excluded: pg.exclude }, 'every database (POSTGRES_DB=*)');
    if (pg.globals || pg.all) sources.push(new GlobalsSource(server, pg.maintenanceDb, log));
    for (const db of databases) sources.push(new PostgresSource(server, db, pg.extraOpts, log));
  }
  for (const folder of config.media) sources.push(new MediaSource(folder, config.mediaExclude, config.mediaCompression, log));
  return { sources, server };
}

/** Every database the connecting user may connect to, templates and `exclude` aside, by name. */
async function connectableDatabases(server: PgServer, maintenanceDb: string, exclude: string[]): Promise<string[]> {
  const rows = await query(
    server.client,
    server.conn,
    maintenanceDb,
    `SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND has_database_privilege(datname, 'CONNECT') ORDER BY datname;`,
  );
  const names = rows.map((r) => r[0]!).filter((name) => !exclude.includes(name));
  if (names.length === 0) throw new RunError(`POSTGRES_DB=*: no database to back up on the server (POSTGRES_EXCLUDE_DB leaves none)`);
  return names;
}

/**
 * Sources for the safety backup taken before a restore: the databases and folders about to be replaced,
 * whole (no POSTGRES_EXTRA_OPTS, no MEDIA_EXCLUDE: the copy must bring back exactly what was there).
 */
export function safetySources(
  config: Config,
  server: PgServer | undefined,
  what: { globals: boolean; databases: string[]; folders: MediaFolder[] },
  log: Logger,
): BackupSource[] {
  const { databases, folders } = what;
  const sources: BackupSource[] = [];
  if (what.globals) sources.push(new GlobalsSource(server!, requirePostgres(config).maintenanceDb, log));
  for (const db of databases) sources.push(new PostgresSource(server!, db, [], log));
  for (const folder of folders) sources.push(new MediaSource(folder, [], config.mediaCompression, log));
  return sources;
}

/** Retention options for the volume, or (with a target's policy) for that remote target. */
export function retentionOptions(config: Config, policy: RetentionPolicy = config.retention): RetentionOptions {
  return { policy, keepPreRestore: config.keepPreRestore, timeZone: config.timeZone, notAfter: notAfterOf(config) };
}

/** Which runs may count as the newest (see RunTrust); `trustUnsigned` from restore and verify's --trust-unsigned. */
export function runTrust(config: Config, trustUnsigned = false): RunTrust {
  return { notAfter: notAfterOf(config), signing: config.signing, trustUnsigned };
}

export function requirePostgres(config: Config): NonNullable<Config['postgres']> {
  if (config.postgres === undefined) {
    throw new UsageError('POSTGRES_HOST, POSTGRES_USER, POSTGRES_DB: needed to reach PostgreSQL (example: POSTGRES_HOST=db POSTGRES_USER=postgres POSTGRES_DB=app)');
  }
  return config.postgres;
}
