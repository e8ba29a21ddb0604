import { execa } from 'execa';
import { RunError, UsageError, firstLine } from '../../errors.ts';
import { timed } from '../../volume/drill-report.ts';
import type { Kind } from '../kind.ts';
import type { BaseBackupArtifact } from './artifact.ts';
import { pitrDrill } from './drill.ts';

/** A full read of a base backup without a server: zstd's checksums, every tar header, and the files recovery needs. */
async function readArchive(path: string, signal: AbortSignal | undefined): Promise<string> {
  const listing = await execa('zstd', ['-d', '-q', '-c', path], { buffer: { stdout: false }, reject: false, cancelSignal: signal }).pipe('tar', ['--list', '--file=-'], { reject: false, cancelSignal: signal });
  if (listing.exitCode !== 0) throw new RunError(`the archive does not read: ${firstLine(listing.stderr)}`);
  const names = new Set(listing.stdout.split('\n').map((n) => n.replace(/^\.\//, '')));
  for (const needed of ['backup_label', 'PG_VERSION', 'global/pg_control']) if (!names.has(needed)) throw new RunError(`${needed} is missing from it: it is no base backup`);
  return `archive reads to the end: ${names.size} entries, backup_label and pg_control present`;
}

/**
 * The whole cluster for point-in-time recovery (WAL_ARCHIVE): never part of a regular run (a base backup
 * run is its own, on BASE_BACKUP_SCHEDULE or `backup-sidecar basebackup`), and restored only by
 * `restore --pitr`, into an empty folder, never over a running server.
 */
export const baseBackupKind: Kind<BaseBackupArtifact> = {
  name: 'basebackup',
  noun: 'base backup',
  needsServer: false,

  sources: async () => [],
  plainFile: async (path) => path,
  check: (path, _artifact, tools) => readArchive(path, tools.signal),
  // A full read first; then the PITR drill proper, on a throwaway server (PG_SERVER_BIN_DIR), or "skipped".
  drill: async (path, artifact, { ctx }) => {
    const read = await timed(`read ${artifact.file}`, () => readArchive(path, ctx.signal));
    return read.ok ? [read, ...(await pitrDrill(path, artifact, ctx))] : [read];
  },

  restoreTarget: () => {
    throw new UsageError('a base backup is restored with `restore --pitr <time|latest|lsn> --pgdata <empty folder>`, into a new data folder, never over a running server');
  },
  describeTarget: (plan) => plan.target,
  confirmWord: () => 'cluster',
  prepare: async () => {},
  safetySource: async () => undefined,
  restore: async () => {
    throw new UsageError('a base backup is restored with `restore --pitr`');
  },
};
