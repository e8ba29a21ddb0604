import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { BaseBackupSource } from '../kinds/basebackup/basebackup.ts';
import type { BackupSource } from '../kinds/source.ts';
import { connectServer, type PgServer } from '../pg/server.ts';

/**
 * The sources of one backup run, kind by kind in the registry's order; with PostgreSQL configured, the
 * server is reached first (and, with POSTGRES_DB=*, asked for its databases at each run).
 */
export async function backupSources(ctx: Context): Promise<{ sources: BackupSource[]; server: PgServer | undefined }> {
  const pg = ctx.config.postgres;
  let server: PgServer | undefined;
  if (pg !== undefined) {
    server = await connectServer(pg, pg.all ? pg.maintenanceDb : pg.databases[0]!);
    ctx.log.info({ server: server.serverVersion, client: server.client.binDir, why: server.clientChoice }, 'PostgreSQL client chosen');
  }
  const sources: BackupSource[] = [];
  for (const kind of ctx.kinds) sources.push(...(await kind.sources(ctx, server)));
  return { sources, server };
}

/** The one source of a base backup run: the whole cluster, through a replication connection. */
export async function baseBackupSources(ctx: Context): Promise<{ sources: BackupSource[]; server: PgServer }> {
  const pg = ctx.postgres();
  if (!ctx.config.wal.enabled) throw new UsageError('WAL_ARCHIVE: set it to true for base backups: without the WAL the daemon streams beside it, a base backup cannot be recovered');
  const server = await connectServer(pg, pg.all ? pg.maintenanceDb : pg.databases[0]!);
  const level = pg.safetyCompression.method === 'zstd' ? pg.safetyCompression.level : 3;
  return { sources: [new BaseBackupSource(server, pg.maintenanceDb, level, ctx.log)], server };
}
