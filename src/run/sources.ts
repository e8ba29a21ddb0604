import type { Context } from '../context.ts';
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
