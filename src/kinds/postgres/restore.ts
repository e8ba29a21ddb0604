import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { execa } from 'execa';
import { bytesReadBy, type Follow } from '../../util/progress.ts';
import { RunError, stopped } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { PostgresArtifact } from '../../manifest.ts';
import { dbnameArg, libpqEnv, pgError, query } from '../../pg/psql.ts';
import type { Cleanup } from '../../util/cleanup.ts';
import { parseRunId } from '../../naming.ts';
import type { RestoreJournal } from '../../volume/restore-journal.ts';
import { applyDatabaseProperties, createLike, readDatabaseProperties, type DatabaseProperties } from './database-properties.ts';
import { countRows, tableKey } from './dump.ts';
import type { PgServer } from '../../pg/server.ts';

export interface DbRestoreOptions {
  jobs: number;
  noOwner: boolean;
  maintenanceDb: string;
  signal: AbortSignal | undefined;
  /** RESTORE_SAFETY=keep: the replaced database is renamed to this instead of dropped. */
  keepAs: string | undefined;
  /** Each scratch database is recorded here before it is created. */
  journal: RestoreJournal;
  /** Follows pg_restore reading the dump (LOG_PROGRESS_EVERY, or a live line). */
  follow?: Follow;
}

/** The first `bytes` bytes of a name, never cutting a character in two. */
function prefixOf(name: string, bytes: number): string {
  return Buffer.from(name).subarray(0, bytes).toString().replace(/\uFFFD/g, '');
}

/**
 * A scratch database name that cannot clash with a real one, within PostgreSQL's 63 bytes. It carries its
 * creation time (seconds, base 36), so that a leftover's age is known without asking the server.
 */
function scratchName(target: string, purpose: 'restore' | 'old'): string {
  return `${prefixOf(target, 30)}__${purpose}_${stamp()}`;
}

/** Creation time (seconds, base 36) and a random tag: the tail of every scratch database's name. */
function stamp(): string {
  return `${Math.floor(Date.now() / 1000).toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** Scratch databases of drills start with this, so they can never be a real database's name. */
const DRILL_DB_PREFIX = 'backup_sidecar_drill_';

/** A drill's scratch database: the prefix no real database has, and its creation time. */
export function drillScratchName(): string {
  return `${DRILL_DB_PREFIX}${stamp()}`;
}

const SCRATCH = /(?:__(?:restore|old)_|^backup_sidecar_drill_)([0-9a-z]{1,8})_[0-9a-f]{8}$/;

/** The name a replaced database is kept under with RESTORE_SAFETY=keep. */
export function keptName(target: string, restoreId: string): string {
  return `${prefixOf(target, 63 - KEPT_INFIX.length - restoreId.length)}${KEPT_INFIX}${restoreId}`;
}
const KEPT_INFIX = '__pre_restore_';

/**
 * Creates a scratch database (for a restore, with the dump's encoding and locale; for a drill, plain) and
 * registers its drop on the cleanup stack; `keep` takes that back once the database is swapped in.
 */
export async function createScratch(
  server: PgServer,
  admin: string,
  name: string,
  cleanup: Cleanup,
  props: DatabaseProperties = { create: [], statements: [] },
): Promise<{ keep: () => void; locale: string | undefined }> {
  const locale = await createLike(server, admin, name, props);
  const keep = cleanup.add(`drop scratch database ${name}`, async () => {
    await query(server.client, server.conn, admin, `DROP DATABASE IF EXISTS :"name" WITH (FORCE);`, { name });
  });
  return { keep, locale };
}

export async function databaseExists(server: PgServer, maintenanceDb: string, name: string): Promise<boolean> {
  const rows = await query(server.client, server.conn, maintenanceDb, `SELECT 1 FROM pg_database WHERE datname = :'name';`, { name });
  return rows.length > 0;
}

/** Compares a restored database with the manifest; returns one line per difference. */
export async function compareCounts(server: PgServer, database: string, artifact: PostgresArtifact): Promise<{ differences: string[]; tables: number; rows: number }> {
  const now = await countRows(server.client, server.conn, database);
  const actual = new Map(now.tables.map((t) => [tableKey(t.schema, t.table), t.rows]));
  const differences: string[] = [];
  let rows = 0;
  for (const [table, expected] of Object.entries(artifact.rowCounts)) {
    const got = actual.get(table);
    rows += expected;
    if (got === undefined) differences.push(`table ${table} is missing`);
    else if (got !== expected) differences.push(`table ${table} has ${got} rows, the manifest says ${expected}`);
  }
  if (now.largeObjects !== artifact.largeObjects) {
    differences.push(`${now.largeObjects} large objects, the manifest says ${artifact.largeObjects}`);
  }
  return { differences, tables: Object.keys(artifact.rowCounts).length, rows };
}

/** Gives the new database the owner and privileges of the one it replaces, so access stays as it was. */
const COPY_PROPERTIES_SQL = `
SELECT format('ALTER DATABASE %I OWNER TO %I', :'scratch', pg_get_userbyid(datdba)) FROM pg_database WHERE datname = :'target' \\gexec
SELECT format('ALTER DATABASE %I CONNECTION LIMIT %s', :'scratch', datconnlimit) FROM pg_database WHERE datname = :'target' \\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'scratch') \\gexec
SELECT format('GRANT %s ON DATABASE %I TO %s', a.privilege_type, :'scratch',
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = :'target' \\gexec
`;

/**
 * Restores a dump into `target`, the safe way round: pg_restore into a scratch database, compare every
 * table's row count with the manifest, and only then swap it in for the old database (which is dropped).
 * Any error before the swap leaves `target` exactly as it was.
 */
export async function restoreDatabase(
  server: PgServer,
  dumpPath: string,
  artifact: PostgresArtifact,
  target: string,
  options: DbRestoreOptions,
  log: Logger,
  cleanup: Cleanup,
): Promise<string> {
  // The swap renames `target`, which no session may be connected to: not even ours.
  const admin = target === options.maintenanceDb ? 'template1' : options.maintenanceDb;
  const scratch = scratchName(target, 'restore');
  const exists = await databaseExists(server, admin, target);
  await options.journal.addDatabase(scratch);
  // The database's own properties (encoding, locale, settings, comment) come from the dump.
  const props = await readDatabaseProperties(server, dumpPath);
  const notCarried: string[] = [];
  const { keep: dropScratch, locale } = await createScratch(server, admin, scratch, cleanup, props);
  if (locale !== undefined) notCarried.push(locale);

  log.info({ database: target, scratch, jobs: options.jobs }, 'pg_restore into a scratch database');
  const args = ['--exit-on-error', '--no-password', `--jobs=${options.jobs}`, `--dbname=${dbnameArg(scratch)}`];
  if (options.noOwner) args.push('--no-owner', '--no-acl');
  const restoring = execa(join(server.client.binDir, 'pg_restore'), [...args, dumpPath], { env: libpqEnv(server.conn, scratch), reject: false, cancelSignal: options.signal });
  const stopProgress = options.follow?.(`pg_restore ${artifact.file}`, bytesReadBy(restoring.pid), (await stat(dumpPath)).size) ?? (() => undefined);
  const restored = await restoring.finally(stopProgress);
  stopped(options.signal);
  if (restored.exitCode !== 0) throw new RunError(`pg_restore of ${artifact.file} failed, database ${target} was not touched: ${pgError(restored.stderr)}`);

  log.debug({ database: target, scratch }, 'pg_restore done; counting rows');
  const check = await compareCounts(server, scratch, artifact);
  if (check.differences.length > 0) {
    throw new RunError(
      `the restored copy of ${target} does not match the manifest, database ${target} was not touched: ${check.differences.slice(0, 5).join('; ')}`,
    );
  }
  // After pg_restore: a setting such as default_transaction_read_only would have stopped it.
  const applied = await applyDatabaseProperties(server, admin, scratch, props, target, !options.noOwner);
  notCarried.push(...applied.refused);
  if (notCarried.length > 0) log.warn({ database: target, notCarried }, 'database properties of the dump not carried over');

  log.debug({ database: target, scratch }, 'rows and properties checked; swapping in');
  stopped(options.signal);
  if (exists) {
    await query(server.client, server.conn, admin, COPY_PROPERTIES_SQL, { scratch, target });
    await swapDatabase(server, admin, target, scratch, log, options);
  } else {
    await query(server.client, server.conn, admin, `ALTER DATABASE :"scratch" RENAME TO :"target";`, { scratch, target });
  }
  dropScratch();
  const carried = applied.tried - applied.refused.length;
  const properties = `${carried} database setting(s) and comment carried over${notCarried.length > 0 ? `; NOT carried over: ${notCarried.join('; ')}` : ''}`;
  return `${check.tables} tables and ${check.rows} rows match the manifest${artifact.largeObjects > 0 ? `, ${artifact.largeObjects} large objects` : ''}; ${properties}`;
}

/**
 * Swaps the checked copy in for `target` in one transaction: end the sessions on `target`, then BEGIN;
 * rename it aside; rename the copy in; COMMIT. Killed at any instant, the server is left with either the
 * old or the new database under the name, connectable; never one that refuses connections or none at
 * all. While the first rename holds its lock, new sessions wait rather than slip in. A session that
 * reconnects between the two steps makes the rename fail after 5 s and the whole step is tried again.
 * Runs from `admin` (template1 when the target is the maintenance database itself). The old database is
 * dropped after the commit.
 */
export async function swapDatabase(server: PgServer, admin: string, target: string, scratch: string, log: Logger, options: Pick<DbRestoreOptions, 'keepAs' | 'journal'>): Promise<void> {
  const old = options.keepAs ?? scratchName(target, 'old');
  if (options.keepAs === undefined) await options.journal.addDatabase(old);
  const run = (sql: string) => query(server.client, server.conn, admin, sql, { target, scratch, old });
  for (let attempt = 1; ; attempt++) {
    try {
      await run(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'target' AND pid <> pg_backend_pid();
BEGIN;
ALTER DATABASE :"target" RENAME TO :"old";
ALTER DATABASE :"scratch" RENAME TO :"target";
COMMIT;`);
      break;
    } catch (error) {
      if (options.keepAs !== undefined && (await databaseExists(server, admin, old))) {
        throw new RunError(`cannot keep the replaced database as ${old}: a database of that name exists; ${target} was not touched`);
      }
      if (attempt >= 5) throw new RunError(`cannot swap the restored copy into ${target} (its sessions kept coming back), it was not touched: ${(error as Error).message}`);
      log.warn({ database: target, attempt, err: (error as Error).message }, 'swap not possible yet; ending the sessions again');
    }
  }
  if (options.keepAs !== undefined) {
    log.info({ database: target, kept: old }, 'the replaced database is kept (RESTORE_SAFETY=keep)');
    return;
  }
  await run(`DROP DATABASE :"old" WITH (FORCE);`).catch((error: Error) =>
    log.warn({ database: old, err: error.message }, 'could not drop the replaced database; the next restore or backup drops it'),
  );
}

/** Databases this tool made on the server and left there: scratch copies, and replaced ones kept. */
export interface LeftDatabases {
  /** Scratch copies of restores that died (or still run elsewhere), with their age in ms. */
  scratch: { name: string; ageMs: number; sessions: number }[];
  /** Replaced databases kept by RESTORE_SAFETY=keep, newest first per database. */
  kept: { name: string; of: string; restoreId: string }[];
}

export async function leftDatabases(server: PgServer, admin: string, now = Date.now()): Promise<LeftDatabases> {
  const rows = await query(
    server.client,
    server.conn,
    admin,
    `SELECT d.datname, (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) FROM pg_database d WHERE d.datname LIKE '%\\_\\_%' OR d.datname LIKE 'backup\\_sidecar\\_drill\\_%' ORDER BY 1;`,
  );
  const left: LeftDatabases = { scratch: [], kept: [] };
  for (const [name = '', sessions = '0'] of rows) {
    const m = SCRATCH.exec(name);
    if (m !== null) left.scratch.push({ name, ageMs: now - parseInt(m[1]!, 36) * 1000, sessions: Number(sessions) });
    const k = name.lastIndexOf(KEPT_INFIX);
    const restoreId = name.slice(k + KEPT_INFIX.length);
    if (k > 0 && parseRunId(restoreId) !== undefined) left.kept.push({ name, of: name.slice(0, k), restoreId });
  }
  left.kept.sort((a, b) => b.restoreId.localeCompare(a.restoreId));
  return left;
}

/**
 * Drops the scratch databases of restores that died: named by this tool, no session connected, and
 * either named in a dead restore's journal or older than `staleMs` (a live restore elsewhere keeps a
 * session on its own). Says so for each; returns those left (still in use, or too young to judge).
 */
export async function dropAbandoned(server: PgServer, admin: string, journaled: string[], staleMs: number, log: Logger): Promise<LeftDatabases['scratch']> {
  const left: LeftDatabases['scratch'] = [];
  for (const db of (await leftDatabases(server, admin)).scratch) {
    if (db.sessions > 0 || (!journaled.includes(db.name) && db.ageMs < staleMs)) {
      left.push(db);
      continue;
    }
    // A leftover this user may not drop (another owner) must not fail the backup or restore that found it.
    try {
      await query(server.client, server.conn, admin, `DROP DATABASE IF EXISTS :"name";`, { name: db.name });
      log.warn({ database: db.name }, 'dropped the scratch database of an interrupted restore or drill');
    } catch (error) {
      log.warn({ database: db.name, err: (error as Error).message }, 'cannot drop the scratch database of an interrupted restore; drop it by hand');
      left.push(db);
    }
  }
  return left;
}

/** Drops the kept copies of `target` beyond the `keep` newest (BACKUP_KEEP_PRE_RESTORE). */
export async function pruneKept(server: PgServer, admin: string, target: string, keep: number, log: Logger): Promise<void> {
  const kept = (await leftDatabases(server, admin)).kept.filter((k) => keptName(target, k.restoreId) === k.name);
  for (const old of kept.slice(keep)) {
    await query(server.client, server.conn, admin, `DROP DATABASE :"name" WITH (FORCE);`, { name: old.name });
    log.info({ database: old.name, keep }, 'dropped a kept pre-restore database (BACKUP_KEEP_PRE_RESTORE)');
  }
}
