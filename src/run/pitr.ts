import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context } from '../context.ts';
import { RunError, UsageError } from '../errors.ts';
import { seriesOf, type BaseBackupArtifact } from '../manifest.ts';
import { PARTIAL_DIR, PRE_RESTORE } from '../naming.ts';
import { isFutureDated } from '../retention/policy.ts';
import { withCleanup } from '../util/cleanup.ts';
import { ensureDir, lchownTree } from '../util/fs.ts';
import { folderOverlap } from '../util/paths.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { requireVolume } from '../volume/resolve.ts';
import { listRuns } from '../volume/runs.ts';
import { giveBackToVolumeOwner } from '../volume/ownership.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { listWal } from '../wal/archive.ts';
import { parseLsn } from '../wal/lsn.ts';
import { RESTORE_WAL_DIR, buildRecoveryFolder, parseTarget, planWal, walAccess, type PitrTarget } from '../wal/recovery.ts';
import { checkChecksums } from './restore.ts';
import { decryptSelection } from './decrypt.ts';
import { fetchRun } from './download.ts';
import { fetchWal, remoteBases, remoteWal, type RemoteBase, type WalSource } from './pitr-remote.ts';

export interface BaseCandidate {
  runId: string;
  runDir: string;
  artifact: BaseBackupArtifact;
}

/** The newest base backup recovery can start from to reach the target: it must be consistent (ended) before it. Pure. */
export function chooseBase<B extends BaseCandidate>(bases: readonly B[], target: PitrTarget): B | undefined {
  const ordered = [...bases].sort((a, b) => b.artifact.endTime.localeCompare(a.artifact.endTime));
  if (target.kind === 'latest') return ordered[0];
  if (target.kind === 'time') return ordered.find((b) => Date.parse(b.artifact.endTime) <= target.time.getTime());
  return ordered.find((b) => parseLsn(b.artifact.endLsn)! <= target.lsn);
}

export interface PitrOptions {
  target: string;
  pgdata: string | undefined;
  /** uid:gid the files are given to when running as root (the postgres image's 999:999 by default). */
  owner: { uid: number; gid: number };
  dryRun: boolean;
  trustUnsigned: boolean;
}

/**
 * `restore --pitr <target> --pgdata <empty folder>`: the newest base backup that ends before the target,
 * its checksum (and signature) checked, unpacked into the folder with every WAL segment it needs, and a
 * recovery configuration that reads only from inside the folder, so the PostgreSQL container needs no
 * access to the backups volume. Nothing runs against a server: the next step (start PostgreSQL on the
 * folder) is printed. Returns the lines for people.
 */
export async function pitrRestore(ctx: Context, options: PitrOptions): Promise<string[]> {
  const { config, log } = ctx;
  const target = parseTarget(options.target);
  await requireVolume(config.backupDir, false);
  // Run as root (the image keeps root for restore --pitr), what lands in the volume goes back to its owner.
  const touched = [join(config.backupDir, PARTIAL_DIR)];
  const work = () =>
    withCleanup(log, async (cleanup) => {
      const notAfter = ctx.notAfter();
      const runs = (await listRuns(config.backupDir, config.signing)).filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && !isFutureDated(r.time, notAfter) && seriesOf(r.manifest) === 'basebackup');
      const local: (BaseCandidate & Partial<Pick<RemoteBase, 'from'>>)[] = runs.map((r) => ({ runId: r.id, runDir: r.dir, artifact: r.manifest!.artifacts.find((a): a is BaseBackupArtifact => a.kind === 'basebackup')! }));
      // The remote targets step in only where the volume cannot serve (a lost host, lost WAL): a target that is down never stops a local restore.
      const targets = ctx.hasRemoteTargets ? await ctx.targets() : [];
      let base = chooseBase(local, target);
      const bases = base === undefined && targets.length > 0 ? [...local, ...(await remoteBases(config.backupDir, targets, new Set(local.map((b) => b.runId))))] : local;
      base ??= chooseBase(bases, target);
      const where = targets.length > 0 ? `${config.backupDir} nor in ${targets.map((t) => t.url).join(', ')}` : config.backupDir;
      if (bases.length === 0) throw new RunError(`no base backup in ${where}: run \`backup-sidecar basebackup\` (WAL_ARCHIVE=true streams the WAL it needs)`);
      if (base === undefined) {
        const oldest = [...bases].sort((a, b) => a.artifact.endTime.localeCompare(b.artifact.endTime))[0]!;
        throw new RunError(`no base backup ends before ${options.target}: the oldest, ${oldest.runId}, ends at ${oldest.artifact.endTime} (${oldest.artifact.endLsn}); recovery cannot reach an earlier point`);
      }
      const kept = await listWal(config.backupDir);
      let wal = planWal(base.artifact, kept);
      const fetchDir = join(config.backupDir, PARTIAL_DIR, `pitr-wal-${process.pid}`);
      let sources = new Map<string, WalSource>();
      if (targets.length > 0 && (base.from !== undefined || wal.gap !== undefined || !wal.reachesEnd)) {
        const remote = await remoteWal(targets, kept, fetchDir);
        wal = planWal(base.artifact, new Map([...kept, ...remote.files]));
        sources = remote.sources;
      }
      const fromRemote = wal.files.filter((f) => sources.has(f.file)).length;
      const lines = [
        `base backup: run ${base.runId} (${base.artifact.startLsn} to ${base.artifact.endLsn} on timeline ${base.artifact.timeline}, ended ${base.artifact.endTime})${base.from === undefined ? '' : `, from ${base.from.store.url}`}`,
        `WAL: ${wal.first} to ${wal.last || '(none)'}${wal.gap === undefined ? '' : `, then a gap: ${wal.gap} is missing`}${wal.files.some((f) => f.partial) ? ' (the last one still being written)' : ''}${fromRemote === 0 ? '' : `; ${fromRemote} file(s) from the remote targets`}`,
        `complete: ${wal.reachesEnd && wal.gap === undefined ? 'yes' : 'NO'}`,
      ];
      if (!wal.reachesEnd) throw new RunError(`${lines.join('; ')}: the WAL kept does not reach the base backup's end point ${base.artifact.endLsn}, so recovery could never become consistent; is WAL_ARCHIVE streaming? (\`backup-sidecar status\`)`);
      if (wal.gap !== undefined) log.warn({ missing: wal.gap }, 'the WAL has a gap: recovery stops before it; a target after it cannot be reached');
      if (options.dryRun) return [...lines, 'dry run: nothing written'];

      const pgdata = options.pgdata;
      if (pgdata === undefined || !pgdata.startsWith('/')) throw new UsageError('--pgdata: an absolute path to an empty folder (a new volume for the postgres container) is needed');
      const overlap = folderOverlap(pgdata, config.backupDir);
      if (overlap !== undefined) throw new UsageError(`--pgdata ${pgdata} ${overlap} BACKUP_DIR (${config.backupDir}): restore into a folder of its own, outside the backups volume`);
      const present = await readdir(pgdata).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
      if (present.length > 0) throw new UsageError(`--pgdata ${pgdata} is not empty (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''}): restore into an empty folder; an interrupted restore leaves files there, remove them first`);

      if (base.from !== undefined) {
        touched.push(join(config.backupDir, base.from.tier));
        log.info({ run: base.runId, from: base.from.store.url }, 'downloading the base backup from the remote target');
        await fetchRun(config.backupDir, base.from.store, base.from.tier, base.runId, ctx.trust(options.trustUnsigned), log, cleanup, ctx.follow);
      }
      if (fromRemote > 0) {
        await ensureDir(fetchDir);
        cleanup.add(`remove ${fetchDir}`, () => rm(fetchDir, { recursive: true, force: true }));
        await fetchWal(wal.files, sources, log);
      }
      await checkRunSignature(base.runDir, `run ${base.runId}`, config.signing, options.trustUnsigned);
      const manifest = base.from === undefined ? runs.find((r) => r.id === base.runId)!.manifest! : (await listRuns(config.backupDir, config.signing)).find((r) => r.id === base.runId)!.manifest!;
      // The plan was made from the manifest as first listed; only the one fetched (and checked) is trusted.
      if (JSON.stringify(manifest.artifacts.find((a) => a.kind === 'basebackup')) !== JSON.stringify(base.artifact)) throw new RunError(`the manifest of run ${base.runId} changed while it was read from ${base.from?.store.url}: refused, nothing restored`);
      const stored = { runDir: base.runDir, manifest, artifacts: [base.artifact] };
      await checkChecksums(stored);
      const plain = await decryptSelection(stored, config.decryption, join(config.backupDir, PARTIAL_DIR), cleanup);
      const archive = join(plain.runDir, plain.artifacts[0]!.file);

      await mkdir(pgdata, { recursive: true, mode: 0o700 });
      // PostgreSQL refuses a data folder others can read; a volume's mount point is usually 0755.
      await chmod(pgdata, 0o700);
      // Whatever fails from here, the folder is emptied again: a half-restored data folder must not be started.
      const undo = cleanup.add(`empty ${pgdata}`, async () => {
        for (const name of await readdir(pgdata).catch(() => [])) await rm(join(pgdata, name), { recursive: true, force: true });
      });
      log.info({ run: base.runId, pgdata }, 'unpacking the base backup');
      await buildRecoveryFolder(archive, wal, target, `restore --pitr ${options.target}, from base backup ${base.runId}`, pgdata, ctx.signal, await walAccess(config, wal.files, options.trustUnsigned));
      const owned = await giveTo(pgdata, options.owner);
      undo();
      log.info({ pgdata, segments: wal.files.length }, 'ready for recovery');
      return [
        ...lines,
        `restored into ${pgdata}: ${wal.files.length} WAL file(s) in ${RESTORE_WAL_DIR}/, recovery.signal, and in postgresql.auto.conf ${target.kind === 'latest' ? 'recovery to the end of the WAL' : `recovery_target_${target.kind} ${options.target}`}, then promote`,
        owned ?? `owned by this user: run \`chown -R ${options.owner.uid}:${options.owner.gid} ${pgdata}\` as root before starting PostgreSQL on it`,
        `next: start PostgreSQL ${base.artifact.serverVersion.split('.')[0]} on ${pgdata} (compose: point the db service's data volume at it and \`docker compose up -d db\`); it replays the WAL, stops at the target and opens for writes`,
      ];
    });
  return withVolumeLock(
    config.backupDir,
    log,
    async () => {
      try {
        return await work();
      } finally {
        await giveBackToVolumeOwner(config.backupDir, touched);
      }
    },
    { waitMs: config.lockWaitMs, signal: ctx.signal },
  );
}

/** Gives every file to the postgres image's user when running as root; otherwise says so (undefined). */
async function giveTo(dir: string, owner: { uid: number; gid: number }): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  await lchownTree(dir, owner.uid, owner.gid);
  return `owned by ${owner.uid}:${owner.gid} (--pgdata-owner)`;
}
