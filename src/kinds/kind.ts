import type { RestoreSafety } from '../config/config.ts';
import type { Context } from '../context.ts';
import type { Artifact } from '../manifest.ts';
import type { PgClient } from '../pg/clients.ts';
import type { PgServer } from '../pg/server.ts';
import type { Cleanup } from '../util/cleanup.ts';
import type { DrillCheck } from '../volume/drill-report.ts';
import type { RestoreJournal } from '../volume/restore-journal.ts';
import type { BackupSource } from './source.ts';

/** What `restore` was asked, as the kinds read it. */
export interface RestoreOptions {
  ref: string;
  targetDb: string | undefined;
  targetDir: string | undefined;
  yes: boolean;
  /** RESTORE_SAFETY, or none with --no-safety-backup. */
  safety: RestoreSafety;
  jobs: number | undefined;
  noOwner: boolean;
  /** Use a run without a signature although BACKUP_SIGNING_KEY is set (an older run). */
  trustUnsigned: boolean;
  /** Restore although the database has tables the dump lacks (they are dropped; the safety backup keeps them). */
  allowMissingTables: boolean;
}

/** One artifact to restore: its plaintext file and where it goes. */
export interface RestorePlan<A extends Artifact = Artifact> {
  artifact: A;
  path: string;
  /** Database name, folder path, or (globals) the server's roles in words. */
  target: string;
}

/** What one restore shares among its artifacts. */
export interface RestoreSession {
  ctx: Context;
  options: RestoreOptions;
  cleanup: Cleanup;
  /** Connected when any kind of the run needs the server. */
  server: PgServer | undefined;
  /** The databases that exist now, asked once (prepare): what the tables check, the safety net and keep act on. */
  existing: Set<string>;
  /** Records scratch databases and folder swaps, so a restore killed at any instant is finished or undone. */
  journal: RestoreJournal;
  /** The restore's own id (its start time): names what RESTORE_SAFETY=keep keeps. */
  restoreId: string;
  /** RESTORE_SAFETY=keep: the replaced databases, as they are now named. */
  kept: string[];
}

/** What one drill shares among its artifacts. */
export interface DrillSession {
  ctx: Context;
  journal: RestoreJournal;
  /** The drill server, connected on first use; undefined when it cannot be reached (a failed check says why). */
  server(): Promise<PgServer | undefined>;
}

/** For `verify`: reads files without any server. */
export interface CheckTools {
  /** The newest installed pg_restore: it reads every older dump. */
  dumpReader(): Promise<PgClient>;
  signal: AbortSignal | undefined;
}

/**
 * One kind of artifact (a database dump, a media tarball, the server's roles), its whole life cycle
 * behind one interface: what a run produces, how `verify` reads it, how a drill proves it, how a restore
 * checks, keeps and replaces what it overwrites. Its manifest part (schema, file name) is in artifact.ts
 * beside it. Everything else dispatches through the registry, never on the kind's name.
 */
export interface Kind<A extends Artifact = Artifact> {
  readonly name: A['kind'];
  /** Its artifact in words ("database dump"), for messages. */
  readonly noun: string;
  /** Whether its restore needs the PostgreSQL server. */
  readonly needsServer: boolean;
  /** The restore flag that sends its one artifact elsewhere (--target-db), and that flag's value. */
  readonly retarget?: { flag: string; value(options: RestoreOptions): string | undefined };

  /** The sources of a backup run, as configured (server: connected when PostgreSQL is configured). */
  sources(ctx: Context, server: PgServer | undefined): Promise<BackupSource[]>;

  /**
   * A file its tools can read (pg_restore --jobs needs a seekable, uncompressed dump): the file itself, or
   * a plaintext copy made in `work.dir` (the volume's .partial/, so a killed command leaves nothing the
   * next one does not remove) and removed by `work.cleanup`.
   */
  plainFile(path: string, artifact: A, work: { dir: string; cleanup: Cleanup; signal: AbortSignal | undefined }): Promise<string>;

  /** A full read of the file, without a server (`verify`): what was checked; throws why it fails. */
  check(path: string, artifact: A, tools: CheckTools): Promise<string>;

  /** The drill's checks of one artifact (restored somewhere scratch, compared with the manifest). */
  drill(path: string, artifact: A, session: DrillSession): Promise<DrillCheck[]>;

  /** Where a restore puts it; a usage error when it has nowhere to go. */
  restoreTarget(artifact: A, ctx: Context, options: RestoreOptions): string;
  /** The target in words, for the confirmation. */
  describeTarget(plan: RestorePlan<A>): string;
  /** What a person types to confirm a restore of this artifact alone. */
  confirmWord(plan: RestorePlan<A>): string;
  /** Checks before anything is touched; notes in session.existing what exists. */
  prepare(plan: RestorePlan<A>, session: RestoreSession): Promise<void>;
  /** The safety backup's source for what the restore replaces, when something needs keeping. */
  safetySource(plan: RestorePlan<A>, session: RestoreSession): Promise<BackupSource | undefined>;
  /** Replaces the target with the artifact's contents; returns the after-check, in words. */
  restore(plan: RestorePlan<A>, session: RestoreSession): Promise<string>;
}
