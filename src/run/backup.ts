import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { EncryptionConfig } from '../config/config.ts';
import type { RunCipher } from '../crypto/age.ts';
import { signatureText, type SigningKeys } from '../crypto/signing.ts';
import { writeSignedManifest } from '../volume/signature.ts';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { manifestText, type Artifact, type Manifest } from '../manifest.ts';
import { AGE_SUFFIX, MANIFEST, PARTIAL_DIR, formatRunId, type RunTier } from '../naming.ts';
import type { OffsiteStore, UploadSink } from '../offsite/store.ts';
import type { PgServer } from '../sources/postgres-server.ts';
import type { BackupSource } from '../sources/source.ts';
import { FanOut } from '../util/fan-out.ts';
import { HashingStream } from '../util/hash.ts';
import { FILE_MODE, ensureDir, fsProblem, fsyncDir, pathExists } from '../util/fs.ts';
import { VERSION } from '../version.ts';
import { withCleanup, type Cleanup } from './cleanup.ts';

export interface BackupRequest {
  backupDir: string;
  tier: RunTier;
  label: string | undefined;
  sources: BackupSource[];
  /** The server the databases come from, when there are any. */
  server: PgServer | undefined;
  log: Logger;
  now?: () => Date;
  /** Where each artifact is also streamed, while it is written; undefined: the volume only. */
  offsite?: OffsiteStore;
  /** Expected artifact sizes by file name (from the previous run), to size upload parts. */
  expectedSizes?: ReadonlyMap<string, number>;
  /** Aborts the run cleanly (the daemon's shutdown timeout): producers are killed, nothing is left. */
  signal?: AbortSignal;
  /** Encrypts every artifact as it is streamed (age); undefined: stored as produced. */
  encryption?: EncryptionConfig;
  /** Signs the manifest (manifest.json.sig); undefined: unsigned. */
  signing?: SigningKeys;
}

export interface BackupResult {
  runDir: string;
  manifest: Manifest;
  /** Why the run is not offsite, when an offsite store was configured and it failed. */
  offsiteError: RunError | undefined;
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

/**
 * Streams one source into `path` and, when given, into an upload at the same time, hashing on the way.
 * A sink error (disk full) wins over its echo in the producer. An upload failure never fails the
 * artifact: it comes back as `offsiteError`.
 */
async function writeArtifact(
  source: BackupSource,
  path: string,
  upload: UploadSink | undefined,
  cipher: RunCipher | undefined,
  cleanup: Cleanup,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<{ artifact: Artifact; offsiteError: RunError | undefined }> {
  signal?.throwIfAborted();
  const production = await source.open();
  const onAbort = () => {
    production.abort();
    // An upload stalled on the network would otherwise hold the write behind its backpressure.
    void upload?.abort(new Error('the run was stopped'));
  };
  signal?.addEventListener('abort', onAbort);
  cleanup.add(`stop listening for the abort of ${source.fileName}`, async () => signal?.removeEventListener('abort', onAbort));
  const hasher = new HashingStream();
  const plain = new HashingStream();
  const file = createWriteStream(path, { flags: 'wx', mode: FILE_MODE, flush: true });
  const tee = new FanOut(file, upload?.stream);
  const settleUpload = upload === undefined ? undefined : cleanup.add(`abort the upload of ${source.fileName}`, () => upload.abort(new Error('the run failed')));
  upload?.failed.catch((error: Error) => tee.drop(error));
  const writing = cipher === undefined ? pipeline(production.stream, hasher, tee) : pipeline(production.stream, plain, cipher.encryptor(), hasher, tee);
  const [written, produced] = await Promise.allSettled([writing, production.done]);
  if (written.status === 'rejected') {
    production.abort();
    await production.done.catch(() => undefined);
    const err = written.reason as NodeJS.ErrnoException;
    // File system errors (ENOSPC, EACCES, ...) carry the failed system call; stream errors do not.
    if (err.syscall !== undefined) {
      throw new RunError(fsProblem(err, `writing ${source.fileName}`));
    }
    if (signal?.aborted) throw new RunError(`aborted: ${describe(signal.reason)}`);
    if (produced.status === 'rejected') throw produced.reason;
    throw new RunError(`writing ${source.fileName} failed: ${describe(err)}`);
  }
  if (signal?.aborted) throw new RunError(`aborted: ${describe(signal.reason)}`);
  if (produced.status === 'rejected') throw produced.reason;
  const size = (await stat(path)).size;
  if (size !== hasher.bytes) throw new RunError(`${path} holds ${size} bytes but ${hasher.bytes} were written: the volume lost data`);
  // Described from what is on disk, read back (and, encrypted, decrypted with this run's own key).
  const details = await production.describe(cipher === undefined ? async () => createReadStream(path) : () => cipher.open(path));
  const encryption = cipher === undefined ? null : { format: 'age' as const, plainSha256: plain.digest(), plainSize: plain.bytes };
  const artifact = { file: basename(path), source: source.name, size, sha256: hasher.digest(), encryption, ...details } as Artifact;

  let offsiteError: RunError | undefined;
  if (upload !== undefined) {
    try {
      if (tee.secondaryError !== undefined) {
        // The upload's own error says why (the stream error is often just its echo, an AbortError).
        await upload.abort(tee.secondaryError);
        throw await upload.failed.catch((error: unknown) => error);
      }
      log.debug({ file: artifact.file }, 'written to the volume; completing the upload');
      upload.stream.end();
      await upload.complete(artifact.sha256, artifact.size);
      settleUpload!();
    } catch (error) {
      offsiteError = error instanceof RunError ? error : new RunError(`upload of ${source.fileName} failed: ${describe(error)}`);
      await upload.abort(offsiteError);
      settleUpload!();
    }
  }
  return { artifact, offsiteError };
}

/**
 * One backup run: every source into BACKUP_DIR/.partial/<run-id>/ (and the offsite store, at the same
 * time), a manifest, then one rename into BACKUP_DIR/<tier>/<run-id>/. Whatever fails locally, the
 * partial folder is removed: a run folder in a tier is always complete. An offsite failure leaves the
 * local run complete and marked "failed" in its manifest, for the next run to retry. The caller holds
 * the volume lock.
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
    runLog.info({ tier: req.tier, sources: req.sources.map((s) => `${s.kind}:${s.name}`), offsite: req.offsite?.url }, 'backup started');

    let offsiteError: RunError | undefined;
    if (req.offsite !== undefined) {
      offsiteError = await req.offsite.check().then(
        () => undefined,
        (error: unknown) => error as RunError,
      );
      if (offsiteError !== undefined) runLog.error({ err: offsiteError.message }, 'offsite store unusable: this run stays local');
    }
    const artifacts: Artifact[] = [];
    const uploaded: string[] = [];
    const store = req.offsite;
    const keepUploads =
      store === undefined
        ? () => undefined
        : cleanup.add('delete the objects this failed run uploaded', async () => {
            if (uploaded.length > 0) {
              await store.deleteRuns([{ id, tier: req.tier, time: start, complete: false, files: uploaded.map((file) => ({ file, key: store.keyOf(req.tier, id, file), size: 0 })) }]);
            }
          });
    // Loaded only when used: the age and noble libraries cost memory in every run otherwise.
    const cipher = req.encryption === undefined ? undefined : await (await import('../crypto/age.ts')).RunCipher.create(req.encryption);
    for (const source of req.sources) {
      const began = Date.now();
      const file = cipher === undefined ? source.fileName : `${source.fileName}${AGE_SUFFIX}`;
      const upload =
        req.offsite !== undefined && offsiteError === undefined
          ? req.offsite.upload(req.tier, id, file, { expectedSize: req.expectedSizes?.get(file) ?? 0 })
          : undefined;
      const result = await writeArtifact(source, join(partialDir, file), upload, cipher, cleanup, runLog, req.signal);
      artifacts.push(result.artifact);
      if (upload !== undefined && result.offsiteError === undefined) uploaded.push(file);
      if (result.offsiteError !== undefined) {
        offsiteError ??= result.offsiteError;
        runLog.error({ file: result.artifact.file, err: result.offsiteError.message }, 'offsite upload failed: this run stays local');
      }
      runLog.info(
        { file: result.artifact.file, bytes: result.artifact.size, ms: Date.now() - began, offsite: upload !== undefined && result.offsiteError === undefined },
        `${source.kind} ${source.name} done`,
      );
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
      offsite:
        req.offsite === undefined
          ? null
          : { url: req.offsite.url, state: offsiteError === undefined ? 'pending' : 'failed', at: now().toISOString(), error: offsiteError?.message ?? null },
    };
    const runDir = join(tierDir, id);
    try {
      await writeSignedManifest(partialDir, manifestText(manifest), req.signing);
      await rename(partialDir, runDir);
      await fsyncDir(tierDir);
    } catch (error) {
      throw new RunError(fsProblem(error, `finishing run ${id}`));
    }
    keep();
    keepUploads();

    if (req.offsite !== undefined && offsiteError === undefined) {
      offsiteError = await finishOffsite(req.offsite, runDir, manifest, now, req.signing);
      if (offsiteError !== undefined) runLog.error({ err: offsiteError.message }, 'offsite manifest upload failed: this run stays local');
    }
    const bytes = artifacts.reduce((s, a) => s + a.size, 0);
    runLog.info(
      {
        dir: runDir,
        bytes,
        ms: Date.now() - start.getTime(),
        warnings: manifest.warnings.length,
        offsite: manifest.offsite?.state ?? 'off',
        // This process only (pg_dump and tar are separate processes): memory must not grow with the data.
        maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      },
      'backup finished',
    );
    return { runDir, manifest, offsiteError };
  });
}

/**
 * Uploads the manifest last (its signature just before it; a run with a manifest in the store is
 * complete), then records the outcome in the local manifest, signed again. Returns the error, if any;
 * the local run is complete either way.
 */
export async function finishOffsite(store: OffsiteStore, runDir: string, manifest: Manifest, now: () => Date, signing: SigningKeys | undefined): Promise<RunError | undefined> {
  let error: RunError | undefined;
  const previous = await readFile(join(runDir, MANIFEST), 'utf8').catch(() => undefined);
  manifest.offsite = { url: store.url, state: 'complete', at: now().toISOString(), error: null };
  try {
    const text = manifestText(manifest);
    await store.putManifest(manifest.tier as RunTier, manifest.runId, text, signing === undefined ? undefined : signatureText(signing, text));
  } catch (e) {
    error = e instanceof RunError ? e : new RunError(describe(e));
    manifest.offsite = { url: store.url, state: 'failed', at: now().toISOString(), error: error.message };
  }
  try {
    await writeSignedManifest(runDir, manifestText(manifest), signing, previous);
  } catch (e) {
    error ??= new RunError(fsProblem(e, `recording the offsite state in ${runDir}`));
  }
  return error;
}
