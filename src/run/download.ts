import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RunError, UsageError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { parseManifest } from '../manifest.ts';
import { signatureState } from '../crypto/signing.ts';
import { MANIFEST, PARTIAL_DIR, SIGNATURE, parseRunId, type RunTier } from '../naming.ts';
import { signatureProblem } from '../volume/signature.ts';
import type { OffsiteStore, RemoteRef } from '../offsite/store.ts';
import { HashingStream } from '../util/hash.ts';
import { FILE_MODE, ensureDir, fsProblem, fsyncDir, pathExists, writeFileAtomic } from '../util/fs.ts';
import { resolveRef, type Selection } from '../volume/resolve.ts';
import type { RunTrust } from '../volume/runs.ts';
import type { Cleanup } from '../util/cleanup.ts';
import { rate, type Follow } from '../util/progress.ts';

/**
 * Downloads a run from the offsite store into the volume (BACKUP_DIR/<tier>/<run-id>), streamed, each
 * file checked against the run's manifest and the sha256 stored with the object. Lands in .partial/
 * first, so a failed or damaged download leaves nothing behind. The caller holds the volume lock.
 */
export async function fetchRun(backupDir: string, store: OffsiteStore, tier: RunTier, id: string, trust: RunTrust, log: Logger, cleanup: Cleanup, follow?: Follow): Promise<string> {
  const text = await store.getManifestText(tier, id);
  // Signed runs: the signature is checked before anything else of the run is read.
  const signature = trust.signing === undefined ? undefined : await store.getSignature(tier, id);
  if (trust.signing !== undefined) {
    const problem = signatureProblem(signatureState(trust.signing, text, signature), `run ${store.url}/${tier}/${id}`, trust.trustUnsigned, trust.signing);
    if (problem !== undefined) throw new RunError(problem);
  }
  const manifest = parseManifest(text, `${store.url}/${tier}/${id}/${MANIFEST}`, { id, tier });
  const partial = join(backupDir, PARTIAL_DIR, `${id}.${tier}.fetch`);
  const runDir = join(backupDir, tier, id);
  try {
    await rm(partial, { recursive: true, force: true });
    await ensureDir(partial);
    await ensureDir(join(backupDir, tier));
  } catch (error) {
    throw new RunError(fsProblem(error, `preparing ${partial}`));
  }
  const keep = cleanup.add(`remove ${partial}`, () => rm(partial, { recursive: true, force: true }));
  for (const artifact of manifest.artifacts) {
    const began = Date.now();
    const { stream, sha256: stored } = await store.download(tier, id, artifact.file);
    const hasher = new HashingStream();
    const stopProgress = follow?.(`download ${artifact.file}`, () => hasher.bytes, artifact.size) ?? (() => undefined);
    try {
      await pipeline(stream, hasher, createWriteStream(join(partial, artifact.file), { flags: 'wx', mode: FILE_MODE, flush: true }));
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (error instanceof RunError) throw error;
      throw new RunError(e.syscall !== undefined ? fsProblem(e, `writing ${artifact.file}`) : `download of ${artifact.file} failed: ${describe(e)}`);
    } finally {
      stopProgress();
    }
    const sha256 = hasher.digest();
    if (sha256 !== artifact.sha256 || hasher.bytes !== artifact.size || (stored !== undefined && stored !== sha256)) {
      throw new RunError(
        `${store.url}/${tier}/${id}/${artifact.file} is damaged: its sha256 is ${sha256} (${hasher.bytes} bytes), the manifest says ${artifact.sha256} (${artifact.size} bytes); nothing was restored: restore an earlier run instead (\`backup-sidecar list --remote\` shows them)`,
      );
    }
    const ms = Date.now() - began;
    log.info({ file: artifact.file, bytes: hasher.bytes, ms, rate: rate(hasher.bytes, ms) }, 'downloaded, sha256 matches the manifest');
  }
  // The manifest's own bytes, as checked (and signed): never a re-serialisation.
  if (signature !== undefined) await writeFileAtomic(join(partial, SIGNATURE), signature);
  await writeFileAtomic(join(partial, MANIFEST), text);
  await rename(partial, runDir);
  keep();
  await fsyncDir(join(backupDir, tier));
  return runDir;
}

/**
 * Resolves a reference like resolveRef, and also remote URLs (s3://..., sftp://...) and run ids that
 * exist only in a remote target: those are downloaded into the volume first, from the first target
 * that has the run complete (a run already in the volume is used as is).
 */
export async function resolveWithOffsite(backupDir: string, targets: OffsiteStore[], ref: string, trust: RunTrust, log: Logger, cleanup: Cleanup, follow?: Follow): Promise<Selection> {
  let remote: RemoteRef | undefined;
  let from: OffsiteStore | undefined;
  const scheme = /^([a-z0-9]+):\/\//.exec(ref)?.[1];
  if (scheme !== undefined) {
    for (const target of targets) {
      remote = target.parseRef(ref);
      if (remote !== undefined) {
        from = target;
        break;
      }
    }
    if (from === undefined) throw new UsageError(`"${ref}" is a ${scheme}:// URL, but no ${scheme.toUpperCase()} target is configured${targets.length > 0 ? ` (targets: ${targets.map((t) => t.url).join(', ')})` : ''}`);
  } else {
    try {
      return await resolveRef(backupDir, ref, trust);
    } catch (error) {
      const id = parseRunId(ref)?.id;
      if (!(error instanceof UsageError) || targets.length === 0 || id === undefined) throw error;
      for (const target of targets) {
        const found = (await target.listRuns()).find((r) => r.id === id && r.complete);
        if (found !== undefined) {
          remote = { tier: found.tier, id, file: undefined };
          from = target;
          break;
        }
      }
      if (from === undefined) throw new UsageError(`no run "${ref}" in ${backupDir} nor in ${targets.map((t) => t.url).join(', ')}; run \`backup-sidecar list --remote\` to see the runs`);
    }
  }
  const { tier, id, file } = remote!;
  const local = join(backupDir, tier, id);
  if (await pathExists(join(local, MANIFEST))) {
    log.info({ run: id }, 'the run is already in the volume; using that copy');
  } else {
    log.info({ run: id, from: from!.url }, 'downloading the run from the offsite store');
    await fetchRun(backupDir, from!, tier, id, trust, log, cleanup, follow);
  }
  return resolveRef(backupDir, file === undefined ? local : join(local, file), trust);
}
