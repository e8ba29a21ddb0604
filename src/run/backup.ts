import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Artifact, Manifest } from '../manifest.ts';
import { MANIFEST, PARTIAL_DIR, formatRunId, type RunTier } from '../naming.ts';
import type { PgServer } from '../sources/postgres-server.ts';
import type { BackupSource } from '../sources/source.ts';
import { HashingStream } from '../util/hash.ts';
import { FILE_MODE, ensureDir, fsProblem, fsyncDir, pathExists, writeFileAtomic } from '../util/fs.ts';
import { VERSION } from '../version.ts';
import { withCleanup } from './cleanup.ts';

export interface BackupRequest {
  backupDir: string;
  tier: RunTier;
  label: string | undefined;
  sources: BackupSource[];
  /** The server the databases come from, when there are any. */
  server: PgServer | undefined;
  log: Logger;
  now?: () => Date;
}

export interface BackupResult {
  runDir: string;
  manifest: Manifest;
}

/** A run id not yet used: two runs in one second wait for the next second. */
async function allocateRunId(req: BackupRequest, now: () => Date): Promise<{ id: string; start: Date }> {
  for (;;) {
    const start = now();
    const id = formatRunId(start, req.label);
    const taken = (await pathExists(join(req.backupDir, req.tier, id))) || (await pathExists(join(req.backupDir, PARTIAL_DIR, id)));
    if (!taken) return { id, start };
    await new Promise((r) => setTimeout(r, 1000 - (start.getTime() % 1000) + 5));
  }
}

/** Streams one source into `path`, hashing on the way; a sink error (disk full) wins over its echo in the producer. */
async function writeArtifact(source: BackupSource, path: string): Promise<Artifact> {
  const production = await source.open();
  const hasher = new HashingStream();
  const file = createWriteStream(path, { flags: 'wx', mode: FILE_MODE, flush: true });
  const [written, produced] = await Promise.allSettled([pipeline(production.stream, hasher, file), production.done]);
  if (written.status === 'rejected') {
    production.abort();
    await production.done.catch(() => undefined);
    const err = written.reason as NodeJS.ErrnoException;
    // File system errors (ENOSPC, EACCES, ...) carry the failed system call; stream errors do not.
    if (err.syscall !== undefined) {
      throw new RunError(fsProblem(err, `writing ${source.fileName}`));
    }
    if (produced.status === 'rejected') throw produced.reason;
    throw new RunError(`writing ${source.fileName} failed: ${describe(err)}`);
  }
  if (produced.status === 'rejected') throw produced.reason;
  const size = (await stat(path)).size;
  if (size !== hasher.bytes) throw new RunError(`${path} holds ${size} bytes but ${hasher.bytes} were written: the volume lost data`);
  const details = await production.describe(path);
  return { file: source.fileName, source: source.name, size, sha256: hasher.digest(), ...details } as Artifact;
}

/**
 * One backup run: every source into BACKUP_DIR/.partial/<run-id>/, a manifest, then one rename into
 * BACKUP_DIR/<tier>/<run-id>/. Whatever fails, the partial folder is removed: a run folder in a tier is
 * always complete. The caller holds the volume lock.
 */
export async function backupRun(req: BackupRequest): Promise<BackupResult> {
  const now = req.now ?? (() => new Date());
  const log = req.log;
  return withCleanup(log, async (cleanup) => {
    const { id, start } = await allocateRunId(req, now);
    const partialDir = join(req.backupDir, PARTIAL_DIR, id);
    const tierDir = join(req.backupDir, req.tier);
    try {
      await ensureDir(partialDir);
      await ensureDir(tierDir);
    } catch (error) {
      throw new RunError(fsProblem(error, `creating the run folder in ${req.backupDir}`));
    }
    const keep = cleanup.add(`remove ${partialDir}`, () => rm(partialDir, { recursive: true, force: true }));
    const runLog = log.child({ run: id });
    runLog.info({ tier: req.tier, sources: req.sources.map((s) => `${s.kind}:${s.name}`) }, 'backup started');

    const artifacts: Artifact[] = [];
    for (const source of req.sources) {
      const began = Date.now();
      const artifact = await writeArtifact(source, join(partialDir, source.fileName));
      artifacts.push(artifact);
      runLog.info({ file: artifact.file, bytes: artifact.size, ms: Date.now() - began }, `${source.kind} ${source.name} done`);
    }

    const manifest: Manifest = {
      manifestVersion: 1,
      runId: id,
      tier: req.tier,
      label: req.label ?? null,
      startedAt: start.toISOString(),
      finishedAt: now().toISOString(),
      tool: { name: 'backup-sidecar', version: VERSION },
      postgres:
        req.server === undefined
          ? null
          : {
              serverVersion: req.server.serverVersion,
              pgDumpVersion: req.server.pgDumpVersion,
              clientBinDir: req.server.client.binDir,
              clientChoice: req.server.clientChoice,
            },
      artifacts,
      warnings: artifacts.flatMap((a) => (a.kind === 'media' ? a.warnings : [])),
    };
    const runDir = join(tierDir, id);
    try {
      await writeFileAtomic(join(partialDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
      await rename(partialDir, runDir);
      await fsyncDir(tierDir);
    } catch (error) {
      throw new RunError(fsProblem(error, `finishing run ${id}`));
    }
    keep();
    const bytes = artifacts.reduce((s, a) => s + a.size, 0);
    runLog.info({ dir: runDir, bytes, ms: Date.now() - start.getTime(), warnings: manifest.warnings.length }, 'backup finished');
    return { runDir, manifest };
  });
}
