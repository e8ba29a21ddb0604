import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { Context } from '../../context.ts';
import { RunError, firstLine } from '../../errors.ts';
import type { BaseBackupArtifact } from '../../manifest.ts';
import { DEBIAN_ROOT, discoverClients, newestClient } from '../../pg/clients.ts';
import { buildRecoveryFolder, planWal, walAccess } from '../../wal/recovery.ts';
import { withCleanup } from '../../util/cleanup.ts';
import { lchownTree, pathExists } from '../../util/fs.ts';
import { timed, type DrillCheck } from '../../volume/drill-report.ts';
import { drillDirPrefix } from '../../volume/lock.ts';
import { listWal } from '../../wal/archive.ts';
import { parseLsn, segmentFile, parseSegment } from '../../wal/lsn.ts';

const CHECK = 'recover to the end of the WAL';
const RECOVERY_TIMEOUT_MS = 120_000;

/**
 * The server binary folder for the drill, when it is the backed-up server's major; otherwise why not.
 * PG_SERVER_BIN_DIR, else the major's own folder where Debian (and the image built with
 * PG_SERVER_MAJORS) puts it.
 */
async function serverBin(ctx: Context, artifact: BaseBackupArtifact): Promise<string> {
  const major = artifact.serverVersion.split('.')[0]!;
  const own = join(DEBIAN_ROOT, major, 'bin');
  const bin = ctx.config.wal.serverBinDir ?? ((await pathExists(join(own, 'postgres'))) && (await pathExists(join(own, 'pg_ctl'))) ? own : undefined);
  if (bin === undefined) throw new RunError(`skipped: no server binary (set PG_SERVER_BIN_DIR to a PostgreSQL ${major} bin folder with postgres and pg_ctl, or build the image with --build-arg PG_SERVER_MAJORS=${major})`);
  if (!(await pathExists(join(bin, 'postgres'))) || !(await pathExists(join(bin, 'pg_ctl')))) throw new RunError(`skipped: no server binary: PG_SERVER_BIN_DIR ${bin} lacks postgres or pg_ctl`);
  const version = (await execa(join(bin, 'postgres'), ['--version'], { reject: false })).stdout;
  const has = /\(PostgreSQL\) (\d+)/.exec(version)?.[1];
  if (has !== major) throw new RunError(`skipped: no server binary of PostgreSQL ${major}: PG_SERVER_BIN_DIR holds ${has ?? 'an unknown version'}`);
  return bin;
}

/**
 * The PITR drill of a base backup: the base backup and the WAL kept after it made into a data folder in
 * a temporary place, a throwaway server of the same major started on it (a Unix socket only, trust for
 * that socket alone), recovery to the end of the WAL, and checks that the server became consistent,
 * replayed up to the last complete segment kept (a damaged one stops it early) and answers a query.
 * The server is stopped and the folder deleted, whatever happens.
 */
export async function pitrDrill(path: string, artifact: BaseBackupArtifact, ctx: Context): Promise<DrillCheck[]> {
  let bin: string;
  try {
    bin = await serverBin(ctx, artifact);
  } catch (error) {
    return [{ check: CHECK, ok: false, detail: (error as Error).message, durationMs: 0 }];
  }
  return [
    await timed(CHECK, () =>
      withCleanup(ctx.log, async (cleanup) => {
        const { config } = ctx;
        const wal = planWal(artifact, await listWal(config.backupDir));
        if (!wal.reachesEnd) throw new RunError(`the WAL kept does not reach the base backup's end point ${artifact.endLsn}`);
        if (wal.gap !== undefined) throw new RunError(`the WAL kept has a gap: ${wal.gap} is missing`);
        const dir = await mkdtemp(join(tmpdir(), drillDirPrefix(config.backupDir)));
        cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
        const data = join(dir, 'data');
        await mkdir(data, { mode: 0o700 });
        // Unattended, a drill accepts no unsigned WAL when a key is set.
        await buildRecoveryFolder(path, wal, { kind: 'latest' }, 'verify --restore (a PITR drill)', data, ctx.signal, await walAccess(config, wal.files, false));
        const user = ctx.postgres().user;
        // A throwaway server: no network, and only its own socket trusted.
        await writeFile(join(data, 'pg_hba.conf'), 'local all all trust\n');
        // PostgreSQL refuses to run as root: as root, the files go to the postgres user, who runs it.
        const root = process.getuid?.() === 0;
        const ids = root ? await execa('id', ['-u', 'postgres'], { reject: false }) : undefined;
        if (root && ids?.exitCode !== 0) throw new RunError('the drill runs as root and there is no postgres user to start the server as: run it as another user');
        if (root) {
          const uid = Number(ids!.stdout);
          const gid = Number((await execa('id', ['-g', 'postgres'])).stdout);
          await lchownTree(dir, uid, gid);
        }
        const run = (file: string, args: string[]) => execa(root ? 'runuser' : file, root ? ['-u', 'postgres', '--', file, ...args] : args, { reject: false });
        const log = join(dir, 'server.log');
        const started = await run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '120', '-o', `-c listen_addresses= -k ${dir} -p 5432 -c archive_mode=off`, 'start']);
        cleanup.add('stop the drill server', async () => {
          await run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
        });
        const serverLog = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => /FATAL|PANIC|ERROR/.test(l)).at(-1) ?? '';
        if (started.exitCode !== 0) throw new RunError(`the server did not start on the restored files: ${firstLine(await serverLog()) || firstLine(started.stderr)}`);
        const psql = join(newestClient(await discoverClients(config.postgres?.binDir)).binDir, 'psql');
        const ask = async (sql: string) => execa(psql, ['-X', '-q', '-A', '-t', '-h', dir, '-p', '5432', '-U', user, '-d', 'postgres', '-c', sql], { reject: false });
        const end = Date.now() + RECOVERY_TIMEOUT_MS;
        let answer;
        for (;;) {
          answer = await ask("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), (SELECT count(*) FROM pg_database WHERE datallowconn)");
          if (answer.exitCode === 0 && answer.stdout.startsWith('f|')) break;
          if (Date.now() > end) throw new RunError(`recovery did not finish in ${RECOVERY_TIMEOUT_MS / 1000} s: ${firstLine(await serverLog()) || firstLine(answer.stderr)}`);
          await sleep(250);
        }
        const [, replayed = '', databases = '0'] = answer.stdout.trim().split('|');
        // Recovery ends at the first record it cannot read: short of the last complete segment kept means a damaged one.
        const lastComplete = wal.files.filter((f) => !f.partial && parseSegment(f.name, artifact.walSegmentSize) !== undefined).at(-1);
        const needed = lastComplete === undefined ? 0n : parseSegment(lastComplete.name, artifact.walSegmentSize)!.segNo * BigInt(artifact.walSegmentSize);
        if (parseLsn(replayed) === undefined || parseLsn(replayed)! < needed) {
          throw new RunError(`recovery stopped at ${replayed}, before the last complete WAL segment kept (${lastComplete?.name}): a damaged segment (${segmentFile(artifact.timeline, (parseLsn(replayed) ?? 0n) / BigInt(artifact.walSegmentSize), artifact.walSegmentSize)}?)`);
        }
        return `PostgreSQL ${artifact.serverVersion.split(' ')[0]} recovered ${wal.files.length} WAL file(s) to ${replayed}, became consistent and promoted; ${databases} database(s) answer`;
      }),
    ),
  ];
}
