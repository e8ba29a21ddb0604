import { timed } from '../../volume/drill-report.ts';
import type { Kind } from '../kind.ts';
import type { GlobalsArtifact } from './artifact.ts';
import { GlobalsSource, checkGlobalsFile } from './dumpall.ts';
import { restoreGlobals } from './restore.ts';

/** The server's roles and tablespaces (POSTGRES_GLOBALS, or every database with POSTGRES_DB=*): restored first. */
export const globalsKind: Kind<GlobalsArtifact> = {
  name: 'globals',
  noun: 'globals file',
  needsServer: true,

  async sources(ctx, server) {
    const pg = ctx.config.postgres;
    return pg !== undefined && server !== undefined && (pg.globals || pg.all) ? [new GlobalsSource(server, pg.maintenanceDb, ctx.log)] : [];
  },

  plainFile: async (path) => path,
  check: async (path, artifact) => checkGlobalsFile(path, artifact),

  // Roles are server-wide: a drill only reads them, it never creates roles on any server.
  drill: async (path, artifact) => [await timed(`read ${artifact.file}`, async () => `${await checkGlobalsFile(path, artifact)} (not restored: roles are server-wide)`)],

  restoreTarget: () => 'roles and tablespaces',
  describeTarget: () => `the server's roles and tablespaces`,
  confirmWord: (plan) => plan.artifact.source,
  // Read and checked statement by statement before anything is touched.
  prepare: async (plan) => {
    await checkGlobalsFile(plan.path, plan.artifact);
  },
  safetySource: async (_plan, session) => new GlobalsSource(session.server!, session.ctx.postgres().maintenanceDb, session.ctx.log),
  restore: async (plan, session) => restoreGlobals(session.server!, session.ctx.postgres().maintenanceDb, plan.path, plan.artifact),
};
