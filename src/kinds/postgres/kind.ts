import { createReadStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { ZST_SUFFIX } from '../../naming.ts';
import type { PgServer } from '../../pg/server.ts';
import { RunError } from '../../errors.ts';
import { failedCheck } from '../../volume/drill-report.ts';
import { query } from '../../pg/psql.ts';
import type { Kind } from '../kind.ts';
import type { PostgresArtifact } from './artifact.ts';
import { drillDatabase } from './drill.ts';
import { PostgresSource, readToc, tablesTheDumpLacks } from './dump.ts';
import { databaseExists, keptName, pruneKept, restoreDatabase } from './restore.ts';
import { decompressFile, decompressing, testFile } from './zstd.ts';

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

/** One database: pg_dump in custom format; restored through a scratch database swapped in when checked. */
export const postgresKind: Kind<PostgresArtifact> = {
  name: 'postgres',
  noun: 'database dump',
  needsServer: true,
  retarget: { flag: '--target-db', value: (o) => o.targetDb },

  async sources(ctx, server) {
    const pg = ctx.config.postgres;
    if (pg === undefined || server === undefined) return [];
    // POSTGRES_DB=*: the databases are asked of the server at each run.
    const databases = pg.all ? await connectableDatabases(server, pg.maintenanceDb, pg.exclude) : pg.databases;
    if (pg.all) ctx.log.info({ databases, excluded: pg.exclude }, 'every database (POSTGRES_DB=*)');
    return databases.map((db) => new PostgresSource(server, db, { extraOpts: pg.extraOpts, compression: pg.compression }, ctx.log));
  },

  async plainFile(path, artifact, { dir, cleanup, signal }) {
    if (artifact.fileCompression === 'none') return path;
    const folder = await cleanup.folder(dir, 'plain', 'the decompressed copy');
    const plain = join(folder, basename(artifact.file, ZST_SUFFIX));
    await decompressFile(path, plain, signal);
    return plain;
  },

  async check(path, artifact, tools) {
    if (artifact.fileCompression === 'none') {
      const toc = await readToc(await tools.dumpReader(), path, undefined, tools.signal);
      return `pg_restore --list ok (${toc.tables} tables)`;
    }
    await testFile(path, tools.signal);
    const toc = await readToc(await tools.dumpReader(), path, decompressing(createReadStream(path)), tools.signal);
    return `zstd -t ok, pg_restore --list ok (${toc.tables} tables)`;
  },

  async drill(path, artifact, session) {
    const server = await session.server();
    if (server === undefined) return [];
    const { config, log, signal } = session.ctx;
    const pg = config.verify.postgres!;
    return drillDatabase(server, pg.maintenanceDb, path, artifact, config.verify.sql, log, signal, session.journal, session.ctx.follow).catch((error: unknown) => [failedCheck(`restore ${artifact.file}`, error)]);
  },

  restoreTarget: (artifact, _ctx, options) => options.targetDb ?? artifact.source,
  describeTarget: (plan) => `database ${plan.target}`,
  confirmWord: (plan) => plan.target,

  async prepare(plan, session) {
    const server = session.server!;
    const pg = session.ctx.postgres();
    if (await databaseExists(server, pg.maintenanceDb, plan.target)) session.existing.add(plan.target);
    const contents = await readToc(server.client, plan.path, undefined, session.ctx.signal);
    // A dump made with POSTGRES_EXTRA_OPTS that leave things out would silently drop them.
    if (session.options.allowMissingTables || !session.existing.has(plan.target)) return;
    const lacking = await tablesTheDumpLacks(server.client, server.conn, plan.target, contents);
    if (lacking.length > 0) {
      throw new RunError(
        `database ${plan.target} has ${lacking.length} table(s) that ${plan.artifact.file} lacks, which the restore would drop: ${lacking.slice(0, 10).join(', ')}${lacking.length > 10 ? ', …' : ''}; nothing was touched. Pass --allow-missing-tables to restore anyway (the safety backup keeps them), or --target-db to restore beside it`,
      );
    }
  },

  async safetySource(plan, session) {
    // keep: the database itself stays, renamed; no dump of it is needed. No POSTGRES_EXTRA_OPTS: the copy must be whole.
    if (session.options.safety !== 'dump' || !session.existing.has(plan.target)) return undefined;
    const compression = session.ctx.postgres().safetyCompression;
    return new PostgresSource(session.server!, plan.target, { extraOpts: [], compression }, session.ctx.log);
  },

  async restore(plan, session) {
    const { ctx, options } = session;
    const pg = ctx.postgres();
    const keepAs = options.safety === 'keep' && session.existing.has(plan.target) ? keptName(plan.target, session.restoreId) : undefined;
    const dbOptions = { jobs: options.jobs ?? availableParallelism(), noOwner: options.noOwner, maintenanceDb: pg.maintenanceDb, signal: ctx.signal, keepAs, journal: session.journal, follow: ctx.follow };
    const check = await restoreDatabase(session.server!, plan.path, plan.artifact, plan.target, dbOptions, ctx.log, session.cleanup);
    if (keepAs !== undefined) {
      session.kept.push(keepAs);
      await pruneKept(session.server!, pg.maintenanceDb, plan.target, ctx.config.keepPreRestore, ctx.log);
    }
    return check;
  },
};
