import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { execa } from 'execa';
import { RunError, firstLine } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { BASE_BACKUP_FILE } from '../../naming.ts';
import { libpqEnv, query } from '../../pg/psql.ts';
import type { PgServer } from '../../pg/server.ts';
import { formatLsn, parseLsn } from '../../wal/lsn.ts';
import { replicationProblem } from '../../wal/refusal.ts';
import { compressing, decompressing, zstdProblem } from '../postgres/zstd.ts';
import type { BackupSource, Production } from '../source.ts';

/** The part of pg_basebackup's backup_manifest that says which WAL recovery needs (PostgreSQL 13 and later). */
const backupManifest = z.object({
  'WAL-Ranges': z.array(z.object({ Timeline: z.number().int().positive(), 'Start-LSN': z.string(), 'End-LSN': z.string() })).min(1),
});

/** The WAL range of a base backup, from the backup_manifest at the end of its tar (read from `tarStream`). */
export async function walRange(tarStream: Readable): Promise<{ startLsn: string; endLsn: string; timeline: number }> {
  const tar = execa('tar', ['--extract', '--to-stdout', '--file=-', 'backup_manifest'], { stdin: tarStream, reject: false });
  const result = await tar;
  let parsed;
  try {
    parsed = backupManifest.parse(JSON.parse(result.stdout));
  } catch {
    throw new RunError(`the base backup holds no readable backup_manifest (${firstLine(result.stderr) || 'not JSON'}): it cannot be used for recovery; PostgreSQL 13 or later writes one`);
  }
  const ranges = parsed['WAL-Ranges'];
  const startLsn = parseLsn(ranges[0]!['Start-LSN']);
  const endLsn = parseLsn(ranges.at(-1)!['End-LSN']);
  if (startLsn === undefined || endLsn === undefined) throw new RunError('the base backup\'s backup_manifest has no valid WAL range: it cannot be used for recovery');
  return { startLsn: formatLsn(startLsn), endLsn: formatLsn(endLsn), timeline: ranges[0]!.Timeline };
}

/**
 * The whole cluster, as pg_basebackup streams it over a replication connection: tar to stdout, through
 * zstd. Without WAL (`-X none`: to stdout, pg_basebackup cannot stream WAL beside it); the WAL archive
 * that WAL_ARCHIVE keeps supplies it, from the start point recorded in the manifest (read from the
 * backup_manifest pg_basebackup puts at the end of the tar).
 */
export class BaseBackupSource implements BackupSource {
  readonly kind = 'basebackup';
  readonly name = 'cluster';
  readonly fileName = BASE_BACKUP_FILE;
  private readonly server: PgServer;
  private readonly database: string;
  private readonly log: Logger;
  private readonly level: number;

  constructor(server: PgServer, database: string, level: number, log: Logger) {
    this.server = server;
    this.database = database;
    this.level = level;
    this.log = log;
  }

  async open(): Promise<Production> {
    const { server } = this;
    const [[size = '0'] = []] = await query(server.client, server.conn, this.database, "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size';");
    const walSegmentSize = Number(size);
    const startTime = new Date();
    const args = ['--pgdata=-', '--format=tar', '--wal-method=none', '--checkpoint=fast', '--no-password', '--label=backup-sidecar'];
    this.log.debug({ args }, 'starting pg_basebackup');
    const child = execa(join(server.client.binDir, 'pg_basebackup'), args, {
      env: libpqEnv(server.conn, this.database),
      stdout: 'pipe',
      buffer: { stdout: false },
      encoding: 'buffer',
      reject: false,
    });
    const zstd = compressing(child.stdout, this.level);
    // zstd holds the pipe now: were this process to keep its end open too, a dead zstd would leave pg_basebackup blocked.
    child.stdout.destroy();
    let endTime = startTime;
    const done = (async () => {
      const zstdFailure = await zstdProblem(zstd, 'the base backup', 'in the image it always is');
      const result = await child;
      const stderr = new TextDecoder().decode(result.stderr as Uint8Array);
      endTime = new Date();
      if (zstdFailure !== undefined) throw zstdFailure;
      if (result.exitCode !== 0) throw new RunError(`pg_basebackup failed: ${result.signal ? `killed by ${result.signal}` : replicationProblem(stderr, server.conn.user)}`);
    })();
    return {
      stream: zstd.stdout,
      done,
      abort: () => {
        child.kill();
        zstd.kill();
      },
      // Read back from the volume: the archive decompresses and its tar reads to the end, and its own manifest says the WAL range.
      describe: async (read) => ({
        kind: 'basebackup',
        format: 'tar',
        compression: 'zstd',
        ...(await walRange(decompressing(await read()))),
        startTime: startTime.toISOString(),
        endTime: endTime.toISOString(),
        walSegmentSize,
        serverVersion: server.serverVersion,
      }),
    };
  }
}
