import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { manifestText, parseManifest, setTargetState, targetStates, type Manifest } from '../manifest.ts';
import { MANIFEST, PRE_RESTORE } from '../naming.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { decide, type RetentionOptions } from '../retention/policy.ts';
import { HashingStream } from '../util/hash.ts';
import { listRuns, type StoredRun } from '../volume/runs.ts';
import { signatureDoubt, type SigningKeys } from '../crypto/signing.ts';
import { signatureProblem, writeSignedManifest } from '../volume/signature.ts';
import { finishOffsite } from './backup.ts';
import { markUntrusted } from './prune.ts';

export interface ShipResult {
  shipped: string[];
  /** Runs still waiting; the first error says why. */
  waiting: string[];
  error: RunError | undefined;
}

/** Uploads one artifact from the volume, checking on the way that the file still matches its manifest. */
async function shipFile(store: OffsiteStore, run: StoredRun, manifest: Manifest, file: string, size: number, sha256: string): Promise<void> {
  const sink = store.upload(run.tier, run.id, file, { expectedSize: size, sha256 });
  const hasher = new HashingStream();
  try {
    // The body is ended only once the file is known to match its manifest, so a changed file never
    // completes an upload.
    const piped = pipeline(createReadStream(join(run.dir, file)), hasher, sink.stream, { end: false });
    // A failed upload stops reading its body; the race notices, and abort() below ends the pipeline.
    piped.catch(() => undefined);
    await Promise.race([piped, sink.failed]);
    if (hasher.digest() !== sha256 || hasher.bytes !== size) {
      throw new RunError(`${join(run.dir, file)} no longer matches the manifest of run ${manifest.runId}: not uploaded; run \`backup-sidecar verify ${manifest.runId}\``);
    }
    sink.stream.end();
    await sink.complete(sha256, size);
  } catch (error) {
    await sink.abort(error as Error);
    throw error instanceof RunError ? error : new RunError(`upload of ${file} failed: ${describe(error)}`);
  }
}

/**
 * Runs that are complete in the store but not marked so locally: the process died between the manifest's
 * upload and the local update. Marked complete when the store's manifest lists exactly the same files and
 * checksums; otherwise left for a person (a warning), never overwritten.
 */
async function reconcile(store: OffsiteStore, runs: StoredRun[], log: Logger, signing: SigningKeys | undefined, now: () => Date): Promise<void> {
  for (const run of runs) {
    const local = run.manifest!;
    let same = false;
    try {
      const remote = parseManifest(await store.getManifestText(run.tier, run.id), `${store.url}/${run.tier}/${run.id}/${MANIFEST}`, { id: run.id, tier: run.tier });
      const files = (m: Manifest) => JSON.stringify(m.artifacts.map((a) => [a.file, a.size, a.sha256]));
      same = files(remote) === files(local);
    } catch (error) {
      log.warn({ run: run.id, err: describe(error) }, 'cannot read the offsite manifest of a run marked not offsite');
      continue;
    }
    if (!same) {
      log.warn({ run: run.id, tier: run.tier, store: store.url }, 'the offsite manifest of this run lists other files than the volume\'s: left as is; check it with verify');
      continue;
    }
    const previous = await readFile(join(run.dir, MANIFEST), 'utf8');
    const updated = structuredClone(local);
    setTargetState(updated, { url: store.url, state: 'complete', at: now().toISOString(), error: null });
    await writeSignedManifest(run.dir, manifestText(updated), signing, previous);
    log.info({ run: run.id, tier: run.tier }, 'run found complete offsite after an interruption: marked complete');
  }
}

/**
 * Uploads the runs of the volume that are missing from the offsite store (a failed or interrupted upload,
 * or runs made before S3 was configured), newest first, skipping those the store's retention would prune
 * anyway. Stops at the first failure: the store is likely still down, and the next run tries again.
 */
export async function shipPending(
  backupDir: string,
  store: OffsiteStore,
  retention: RetentionOptions,
  log: Logger,
  now: () => Date,
  signing: SigningKeys | undefined,
): Promise<ShipResult> {
  const remote = await markUntrusted(store, await store.listRuns(), retention, signing);
  const remoteComplete = new Set(remote.filter((r) => r.complete).map((r) => `${r.tier}/${r.id}`));
  const local = (await listRuns(backupDir, signing)).filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE);
  const missing = local.filter((r) => !remoteComplete.has(`${r.tier}/${r.id}`));
  const keep = new Set(
    decide(
      [
        ...remote.filter((r) => !missing.some((m) => m.tier === r.tier && m.id === r.id)),
        ...missing.map((r) => ({ ...r, complete: true, untrusted: signatureDoubt(r.signature) })),
      ],
      retention,
    )
      .filter((d) => d.keep)
      .map((d) => `${d.tier}/${d.id}`),
  );
  const result: ShipResult = { shipped: [], waiting: [], error: undefined };
  const stateHere = (r: StoredRun) => targetStates(r.manifest!).find((t) => t.url === store.url)?.state;
  await reconcile(store, local.filter((r) => remoteComplete.has(`${r.tier}/${r.id}`) && stateHere(r) !== 'complete'), log, signing, now);
  for (const run of missing.filter((r) => keep.has(`${r.tier}/${r.id}`))) {
    if (result.error !== undefined) {
      result.waiting.push(run.id);
      continue;
    }
    const manifest = run.manifest!;
    if (run.signature === 'missing') {
      // Made before BACKUP_SIGNING_KEY was set: the bucket only gets runs whose signature is checked.
      log.warn({ run: run.id, tier: run.tier }, 'earlier run not uploaded offsite: it is unsigned (made before BACKUP_SIGNING_KEY was set)');
      continue;
    }
    try {
      const problem = run.signature === undefined || signing === undefined ? undefined : signatureProblem(run.signature, `run ${run.tier}/${run.id}`, false, signing);
      if (problem !== undefined) throw new RunError(`not uploaded offsite: ${problem}`);
      for (const a of manifest.artifacts) await shipFile(store, run, manifest, a.file, a.size, a.sha256);
      const [error] = (await finishOffsite([store], run.dir, manifest, now, signing)).values();
      if (error !== undefined) throw error;
      result.shipped.push(run.id);
      log.info({ run: run.id, tier: run.tier }, 'earlier run uploaded offsite');
    } catch (error) {
      result.error = error instanceof RunError ? error : new RunError(describe(error));
      result.waiting.push(run.id);
      log.error({ run: run.id, err: result.error.message }, 'earlier run still not offsite');
    }
  }
  return result;
}
