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
import { manifestText, setTargetState, type Artifact, type Manifest } from '../manifest.ts';
import { AGE_SUFFIX, MANIFEST, PARTIAL_DIR, RUN_TIERS, formatRunId, type RunTier } from '../naming.ts';
import type { OffsiteStore, UploadSink } from '../offsite/store.ts';
import type { PgServer } from '../pg/server.ts';
import type { BackupSource } from '../kinds/source.ts';
import { FanOut } from '../util/fan-out.ts';
import { HashingStream } from '../util/hash.ts';
import { rate, type Follow } from '../util/progress.ts';
import { FILE_MODE, ensureDir, fsProblem, fsyncDir, pathExists } from '../util/fs.ts';
import { VERSION } from '../version.ts';
import { peakRssMiB } from '../util/memory.ts';
import { withCleanup, type Cleanup } from '../util/cleanup.ts';

export interface BackupRequest {
  backupDir: string;
  tier: RunTier;
  label: string | undefined;
  sources: BackupSource[];
  /** The server the databases come from, when there are any. */
  server: PgServer | undefined;
  log: Logger;
  now?: () => Date;
  /** The remote targets each artifact is also streamed to, while it is written; none: the volume only. */
  offsite?: OffsiteStore[];
  /** Expected artifact sizes by file name (from the previous run), to size upload parts. */
  expectedSizes?: ReadonlyMap<string, number>;
  /** Aborts the run cleanly (the daemon's shutdown timeout): producers are killed, nothing is left. */
  signal?: AbortSignal;
  /** Encrypts every artifact as it is streamed (age); undefined: stored as produced. */
  encryption?: EncryptionConfig;
  /** Signs the manifest (manifest.json.sig); undefined: unsigned. */
  signing?: SigningKeys;
  /** Follows each artifact as it is written (LOG_PROGRESS_EVERY, or a live line); none: silent. */
  follow?: Follow;
  /** How many sources are produced at once (POSTGRES_PARALLEL); 1 when unset. */
  parallel?: number;
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
    // Unique across every tier: a run id alone (restore <run-id>) must name one run.
    const places = [...RUN_TIERS, PARTIAL_DIR].map((dir) => join(req.backupDir, dir, id));
    const taken = (await Promise.all(places.map(pathExists))).some(Boolean);
    if (!taken) return { id, start };
    await new Promise((r) => setTimeout(r, 1000 - (start.getTime() % 1000) + 5));
  }
}

/**
 * Streams one source into `path` and, at the same time, into one upload per remote target, hashing on
 * the way. A sink error (disk full) wins over its echo in the producer. An upload failure never fails the
 * artifact, nor the other uploads: it comes back in `offsiteErrors`, by target URL.
 */
async function writeArtifact(
  source: BackupSource,
  path: string,
  uploads: { url: string; sink: UploadSink }[],
  cipher: RunCipher | undefined,
  cleanup: Cleanup,
  log: Logger,
  signal: AbortSignal | undefined,
  follow: Follow | undefined,
  expectedSize: number | undefined,
): Promise<{ artifact: Artifact; offsiteErrors: Map<string, RunError> }> {
  signal?.throwIfAborted();
  const production = await source.open();
  const onAbort = () => {
    production.abort();
    // An upload stalled on the network would otherwise hold the write behind its backpressure.
    for (const u of uploads) void u.sink.abort(new Error('the run was stopped'));
  };
  signal?.addEventListener('abort', onAbort);
  cleanup.add(`stop listening for the abort of ${source.fileName}`, async () => signal?.removeEventListener('abort', onAbort));
  const hasher = new HashingStream();
  const plain = new HashingStream();
  const file = createWriteStream(path, { flags: 'wx', mode: FILE_MODE, flush: true });
  const tee = new FanOut(file, uploads.map((u) => u.sink.stream));
  const settle = uploads.map((u) => cleanup.add(`abort the upload of ${source.fileName} to ${u.url}`, () => u.sink.abort(new Error('the run failed'))));
  for (const u of uploads) u.sink.failed.catch((error: Error) => tee.drop(u.sink.stream, error));
  const writing = cipher === undefined ? pipeline(production.stream, hasher, tee) : pipeline(production.stream, plain, cipher.encryptor(), hasher, tee);
  const stopProgress = follow?.(`${source.kind} ${source.name}`, () => hasher.bytes, expectedSize) ?? (() => undefined);
  const [written, produced] = await Promise.allSettled([writing, production.done]);
  stopProgress();
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

  const offsiteErrors = new Map<string, RunError>();
  await Promise.all(
    uploads.map(async ({ url, sink }, i) => {
      try {
        const dropped = tee.secondaryErrors.get(sink.stream);
        if (dropped !== undefined) {
          // The upload's own error says why (the stream error is often just its echo, an AbortError).
          await sink.abort(dropped);
          throw await sink.failed.catch((error: unknown) => error);
        }
        log.debug({ file: artifact.file, target: url }, 'written to the volume; completing the upload');
        sink.stream.end();
        await sink.complete(artifact.sha256, artifact.size);
      } catch (error) {
        const why = error instanceof RunError ? error : new RunError(`upload of ${source.fileName} to ${url} failed: ${describe(error)}`);
        offsiteErrors.set(url, why);
        await sink.abort(why);
      }
      settle[i]!();
    }),
  );
  return { artifact, offsiteErrors };
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
    runLog.info({ tier: req.tier, sources: req.sources.map((s) => `${s.kind}:${s.name}`), offsite: req.offsite?.map((t) => t.url) }, 'backup started');

    // Each remote target on its own: one that fails (down, full) leaves the others and the volume going.
    const targets = req.offsite ?? [];
    const offsiteErrors = new Map<string, RunError>();
    for (const target of targets) {
      const error = await target.check().then(
        () => undefined,
        (e: unknown) => e as RunError,
      );
      if (error !== undefined) {
        offsiteErrors.set(target.url, error);
        runLog.error({ target: target.url, err: error.message }, 'remote target unusable: this run is not copied there');
      }
    }
    const uploaded = new Map<OffsiteStore, string[]>(targets.map((t) => [t, []]));
    const keepUploads = cleanup.add('delete the objects this failed run uploaded', async () => {
      for (const [target, files] of uploaded) {
        if (files.length === 0) continue;
        await target.deleteRuns([{ id, tier: req.tier, time: start, complete: false, files: files.map((file) => ({ file, key: target.keyOf(req.tier, id, file), size: 0 })) }]);
      }
    });
    // Loaded only when used: the age and noble libraries cost memory in every run otherwise.
    const cipher = req.encryption === undefined ? undefined : await (await import('../crypto/age.ts')).RunCipher.create(req.encryption);
    // Up to `parallel` sources at once (POSTGRES_PARALLEL): the first failure stops the others.
    const stop = new AbortController();
    const signal = req.signal === undefined ? stop.signal : AbortSignal.any([req.signal, stop.signal]);
    const results: Artifact[] = [];
    let failure: unknown;
    const one = async (source: BackupSource, index: number) => {
      const began = Date.now();
      const file = cipher === undefined ? source.fileName : `${source.fileName}${AGE_SUFFIX}`;
      const live = targets.filter((t) => !offsiteErrors.has(t.url));
      const uploads = live.map((t) => ({ url: t.url, target: t, sink: t.upload(req.tier, id, file, { expectedSize: req.expectedSizes?.get(file) ?? 0 }) }));
      const result = await writeArtifact(source, join(partialDir, file), uploads, cipher, cleanup, runLog, signal, req.follow, req.expectedSizes?.get(file));
      results[index] = { ...result.artifact, durationMs: Date.now() - began };
      for (const u of uploads) {
        const error = result.offsiteErrors.get(u.url);
        if (error === undefined) uploaded.get(u.target)!.push(file);
        else {
          offsiteErrors.set(u.url, error);
          runLog.error({ file: result.artifact.file, target: u.url, err: error.message }, 'offsite upload failed: this run is not copied there');
        }
      }
      const ms = Date.now() - began;
      runLog.info(
        { file: result.artifact.file, bytes: result.artifact.size, ms, rate: rate(result.artifact.size, ms), offsite: uploads.filter((u) => !result.offsiteErrors.has(u.url)).map((u) => u.url) },
        `${source.kind} ${source.name} done`,
      );
    };
    let next = 0;
    const worker = async () => {
      while (failure === undefined && next < req.sources.length) {
        const index = next++;
        await one(req.sources[index]!, index).catch((error: unknown) => {
          // The first error is the cause; the others' are its echo (stopped by it).
          if (failure === undefined) {
            failure = error;
            stop.abort(error);
          }
        });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(req.parallel ?? 1, req.sources.length)) }, worker));
    if (failure !== undefined) throw failure;
    const artifacts = results;

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
      warnings: artifacts.flatMap((a) => ('warnings' in a ? a.warnings : [])),
      offsite: null,
      targets: [],
    };
    for (const t of targets) {
      const error = offsiteErrors.get(t.url);
      setTargetState(manifest, { url: t.url, state: error === undefined ? 'pending' : 'failed', at: now().toISOString(), error: error?.message ?? null });
    }
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

    const reached = targets.filter((t) => !offsiteErrors.has(t.url));
    if (reached.length > 0) {
      for (const [url, error] of await finishOffsite(reached, runDir, manifest, now, req.signing)) {
        offsiteErrors.set(url, error);
        runLog.error({ target: url, err: error.message }, 'offsite manifest upload failed: this run is not complete there');
      }
    }
    const offsiteError = offsiteErrors.size === 0 ? undefined : new RunError([...offsiteErrors].map(([url, e]) => (targets.length > 1 ? `${url}: ${e.message}` : e.message)).join('; '));
    const bytes = artifacts.reduce((s, a) => s + a.size, 0);
    runLog.info(
      {
        dir: runDir,
        bytes,
        ms: Date.now() - start.getTime(),
        warnings: manifest.warnings.length,
        offsite: manifest.offsite?.state ?? 'off',
        // This process only (pg_dump and tar are separate processes): memory must not grow with the data.
        maxRssMiB: peakRssMiB(),
      },
      'backup finished',
    );
    return { runDir, manifest, offsiteError };
  });
}

/**
 * Uploads the manifest last to each target (its signature just before it; a run with a manifest in a
 * target is complete there), then records every target's outcome in the local manifest, signed again.
 * Returns the errors by target URL; the local run is complete either way.
 */
export async function finishOffsite(
  targets: OffsiteStore[],
  runDir: string,
  manifest: Manifest,
  now: () => Date,
  signing: SigningKeys | undefined,
): Promise<Map<string, RunError>> {
  const errors = new Map<string, RunError>();
  const previous = await readFile(join(runDir, MANIFEST), 'utf8').catch(() => undefined);
  for (const target of targets) {
    setTargetState(manifest, { url: target.url, state: 'complete', at: now().toISOString(), error: null });
    try {
      const text = manifestText(manifest);
      await target.putManifest(manifest.tier as RunTier, manifest.runId, text, signing === undefined ? undefined : signatureText(signing, text));
    } catch (e) {
      const error = e instanceof RunError ? e : new RunError(describe(e));
      errors.set(target.url, error);
      setTargetState(manifest, { url: target.url, state: 'failed', at: now().toISOString(), error: error.message });
    }
  }
  try {
    await writeSignedManifest(runDir, manifestText(manifest), signing, previous);
  } catch (e) {
    errors.set(runDir, new RunError(fsProblem(e, `recording the offsite state in ${runDir}`)));
  }
  return errors;
}
