import { notAfterOf } from './clock.ts';
import type { Config, MediaFolder, RetentionPolicy } from './config/config.ts';
import { UsageError } from './errors.ts';
import type { Logger } from './log.ts';
import type { RetentionOptions } from './retention/policy.ts';
import type { RunTrust } from './volume/runs.ts';
import { GlobalsSource } from './sources/globals.ts';
import { MediaSource } from './sources/media.ts';
import { PostgresSource } from './sources/postgres.ts';
import { connectServer, type PgServer } from './sources/postgres-server.ts';
import type { BackupSource } from './sources/source.ts';

/** Which sources to build; undefined means all configured ones. */
export interface SourceFilter {
  databases?: string[];
  media?: string[];
}

/** The composition root: the one place that turns configuration into concrete sources. */
export async function buildSources(
  config: Config,
  log: Logger,
  filter: SourceFilter = {},
): Promise<{ sources: BackupSource[]; server: PgServer | undefined }> {
  const sources: BackupSource[] = [];
  let server: PgServer | undefined;
  const databases = filter.databases ?? config.postgres?.databases ?? [];
  if (databases.length > 0) {
    const pg = requirePostgres(config);
    server = await connectServer(pg, filter.databases === undefined ? databases[0]! : pg.maintenanceDb);
    log.info({ server: server.serverVersion, client: server.client.binDir, why: server.clientChoice }, 'PostgreSQL client chosen');
    if (pg.globals && filter.databases === undefined) sources.push(new GlobalsSource(server, pg.maintenanceDb, log));
    for (const db of databases) sources.push(new PostgresSource(server, db, pg.extraOpts, log));
  }
  const media = filter.media === undefined ? config.media : config.media.filter((m) => filter.media!.includes(m.name));
  for (const folder of media) sources.push(new MediaSource(folder, config.mediaExclude, config.mediaCompression, log));
  return { sources, server };
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
