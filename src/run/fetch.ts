import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { S3Config } from '../config/config.ts';
import { RunError, UsageError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { parseManifest } from '../manifest.ts';
import { signatureState } from '../crypto/signing.ts';
import { MANIFEST, PARTIAL_DIR, RUN_TIERS, SIGNATURE, parseObjectKey, parseRunId, type RunTier } from '../naming.ts';
import { signatureProblem } from '../volume/signature.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { HashingStream } from '../util/hash.ts';
import { FILE_MODE, ensureDir, fsProblem, fsyncDir, pathExists, writeFileAtomic } from '../util/fs.ts';
import { resolveRef, type Selection } from '../volume/resolve.ts';
import type { RunTrust } from '../volume/runs.ts';

interface RemoteRef {
  tier: RunTier;
  id: string;
  file: string | undefined;
}

/** Parses s3://bucket/<prefix>/<tier>/<run-id>[/<file>] against the configured bucket and prefix. */
export function parseS3Url(url: string, s3: Pick<S3Config, 'bucket' | 'prefix'>): RemoteRef {
  const m = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(url);
  const hint = `expected s3://${s3.bucket}/${s3.prefix === '' ? '' : `${s3.prefix}/`}<tier>/<run-id>[/<file>]`;
  if (m === null) throw new UsageError(`"${url}" is not an S3 run or file: ${hint}`);
  if (m[1] !== s3.bucket) throw new UsageError(`"${url}" is in bucket "${m[1]}", but S3_BUCKET is "${s3.bucket}"`);
  const key = m[2]!;
  const asFile = parseObjectKey(s3.prefix, key);
  if (asFile !== undefined) return { tier: asFile.tier, id: asFile.run.id, file: asFile.file === MANIFEST ? undefined : asFile.file };
  const head = s3.prefix === '' ? '' : `${s3.prefix}/`;
  const [tier, id, ...rest] = key.startsWith(head) ? key.slice(head.length).split('/') : [];
  if (rest.length === 0 && tier !== undefined && (RUN_TIERS as readonly string[]).includes(tier) && id !== undefined && parseRunId(id) !== undefined) {
    return { tier: tier as RunTier, id, file: undefined };
  }
  throw new UsageError(`"${url}" is not a run or file of backup-sidecar: ${hint}`);
}

/**
 * Downloads a run from the offsite store into the volume (BACKUP_DIR/<tier>/<run-id>), streamed, each
 * file checked against the run's manifest and the sha256 stored with the object. Lands in .partial/
 * first, so a failed or damaged download leaves nothing behind. The caller holds the volume lock.
 */
export async function fetchRun(backupDir: string, store: OffsiteStore, tier: RunTier, id: string, trust: RunTrust, log: Logger): Promise<string> {
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
  try {
    for (const artifact of manifest.artifacts) {
      const began = Date.now();
      const { stream, sha256: stored } = await store.download(tier, id, artifact.file);
      const hasher = new HashingStream();
      try {
        await pipeline(stream, hasher, createWriteStream(join(partial, artifact.file), { flags: 'wx', mode: FILE_MODE, flush: true }));
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        if (error instanceof RunError) throw error;
        throw new RunError(e.syscall !== undefined ? fsProblem(e, `writing ${artifact.file}`) : `download of ${artifact.file} failed: ${describe(e)}`);
      }
      const sha256 = hasher.digest();
      if (sha256 !== artifact.sha256 || hasher.bytes !== artifact.size || (stored !== undefined && stored !== sha256)) {
        throw new RunError(
          `${store.url}/${tier}/${id}/${artifact.file} is damaged: its sha256 is ${sha256} (${hasher.bytes} bytes), the manifest says ${artifact.sha256} (${artifact.size} bytes); nothing was restored`,
        );
      }
      log.info({ file: artifact.file, bytes: hasher.bytes, ms: Date.now() - began }, 'downloaded, sha256 matches the manifest');
    }
    // The manifest's own bytes, as checked (and signed): never a re-serialisation.
    if (signature !== undefined) await writeFileAtomic(join(partial, SIGNATURE), signature);
    await writeFileAtomic(join(partial, MANIFEST), text);
    await rename(partial, runDir);
    await fsyncDir(join(backupDir, tier));
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  return runDir;
}

/**
 * Resolves a reference like resolveRef, and also s3://... URLs and run ids that exist only in the
 * offsite store: those are downloaded into the volume first (a run already in the volume is used as is).
 */
export async function resolveWithOffsite(backupDir: string, store: OffsiteStore | undefined, s3: S3Config | undefined, ref: string, trust: RunTrust, log: Logger): Promise<Selection> {
  let remote: RemoteRef | undefined;
  if (ref.startsWith('s3://')) {
    if (store === undefined || s3 === undefined) throw new UsageError(`"${ref}" is in S3, but S3_BUCKET is not set`);
    remote = parseS3Url(ref, s3);
  } else {
    try {
      return await resolveRef(backupDir, ref, trust);
    } catch (error) {
      const id = parseRunId(ref)?.id;
      if (!(error instanceof UsageError) || store === undefined || id === undefined) throw error;
      const found = (await store.listRuns()).find((r) => r.id === id && r.complete);
      if (found === undefined) throw new UsageError(`no run "${ref}" in ${backupDir} nor in ${store.url}; run \`backup-sidecar list --remote\` to see the runs`);
      remote = { tier: found.tier, id, file: undefined };
    }
  }
  const local = join(backupDir, remote.tier, remote.id);
  if (await pathExists(join(local, MANIFEST))) {
    log.info({ run: remote.id }, 'the run is already in the volume; using that copy');
  } else {
    log.info({ run: remote.id, from: store!.url }, 'downloading the run from the offsite store');
    await fetchRun(backupDir, store!, remote.tier, remote.id, trust, log);
  }
  return resolveRef(backupDir, remote.file === undefined ? local : join(local, remote.file), trust);
}
