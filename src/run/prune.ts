import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { PARTIAL_DIR, PRE_RESTORE } from '../naming.ts';
import type { OffsiteStore, RemoteRun } from '../offsite/store.ts';
import { signatureDoubt, signatureState, type SigningKeys } from '../crypto/signing.ts';
import { decide, referenceRun, type Decision, type RetentionOptions } from '../retention/policy.ts';
import { ensureDir, fsProblem } from '../util/fs.ts';
import { pruneWal } from '../wal/archive.ts';
import { WAL_SIG_SUFFIX } from '../wal/signature.ts';
import { listRuns, volumeDrops } from '../volume/runs.ts';
import { dropHolds, type Drop } from '../retention/drops.ts';
import type { SizeDropConfig } from '../config/config.ts';
import { seriesOf, seriesOfFiles, targetStates, type Manifest } from '../manifest.ts';

export interface PruneReport {
  /** 'volume', or the remote target's URL. */
  where: string;
  decisions: Decision[];
  removed: number;
}

/**
 * Applies retention to the volume. With remote targets, runs not yet uploaded to every one are kept. A removed run is first moved into .partial/ (one rename, so it never
 * looks complete while half deleted), then deleted. The caller holds the volume lock.
 */
export async function pruneVolume(backupDir: string, options: RetentionOptions, log: Logger, dryRun: boolean, remotes: boolean, signing: SigningKeys | undefined): Promise<PruneReport> {
  const runs = await listRuns(backupDir, signing);
  const decisions = decide(
    runs.map((r) => ({
      id: r.id,
      tier: r.tier,
      complete: r.manifest !== undefined,
      // With remote targets, a run not yet in every one may be the only copy: it waits for the upload.
      pinned: remotes && r.manifest !== undefined && r.tier !== PRE_RESTORE && r.manifest.offsite?.state !== 'complete' ? `not yet in ${notIn(r.manifest)}` : undefined,
      untrusted: signatureDoubt(r.signature),
      series: r.manifest === undefined ? 'dumps' : seriesOf(r.manifest),
    })),
    options,
  );
  warnSuspicious(decisions, 'volume', log);
  let removed = 0;
  if (!dryRun) {
    for (const d of decisions.filter((x) => !x.keep)) {
      const run = runs.find((r) => r.id === d.id && r.tier === d.tier)!;
      const trash = join(backupDir, PARTIAL_DIR, `${run.id}.${run.tier}.pruned`);
      try {
        await ensureDir(join(backupDir, PARTIAL_DIR));
        await rename(run.dir, trash);
        await rm(trash, { recursive: true, force: true });
      } catch (error) {
        throw new RunError(fsProblem(error, `removing ${run.dir}`));
      }
      removed += 1;
      log.info({ run: run.id, tier: run.tier, reason: d.reason }, 'pruned from the volume');
    }
  }
  return { where: 'volume', decisions, removed };
}

/** The remote targets a run is not (yet) complete in. */
function notIn(manifest: Manifest): string {
  return targetStates(manifest).filter((t) => t.state !== 'complete').map((t) => t.url).join(', ') || 'the remote targets';
}

/**
 * With a signing key, the run ages count from must be signed: it is checked in the store (manifest and
 * signature), and if it fails it is marked untrusted and the next candidate checked, so a forged run in
 * the bucket never decides what is pruned.
 */
export async function markUntrusted(store: OffsiteStore, runs: RemoteRun[], options: RetentionOptions, signing: SigningKeys | undefined): Promise<(RemoteRun & { untrusted?: string })[]> {
  const marked: (RemoteRun & { untrusted?: string })[] = runs.map((r) => ({ ...r }));
  if (signing === undefined) return marked;
  for (let ref = referenceRun(marked, options); ref !== undefined; ref = referenceRun(marked, options)) {
    const state = signatureState(signing, await store.getManifestText(ref.tier, ref.id), await store.getSignature(ref.tier, ref.id));
    if (state === 'valid') break;
    ref.untrusted = signatureDoubt(state);
  }
  return marked;
}

/** Runs dated in the future are kept, and said loudly: a forged run, or a clock that jumped. */
function warnSuspicious(decisions: Decision[], where: string, log: Logger): void {
  for (const d of decisions.filter((x) => x.suspicious === true)) {
    log.warn({ run: d.id, tier: d.tier, where }, d.reason);
  }
}

/** Applies retention to the offsite store: DeleteObjects in batches, only keys this tool made. */
export async function pruneOffsite(store: OffsiteStore, options: RetentionOptions, log: Logger, dryRun: boolean, signing: SigningKeys | undefined): Promise<PruneReport> {
  const runs = await markUntrusted(store, await store.listRuns(), options, signing);
  const decisions = decide(runs.map((r) => ({ ...r, series: seriesOfFiles(r.files.map((f) => f.file)) })), options);
  warnSuspicious(decisions, store.url, log);
  const doomed = runs.filter((r) => decisions.some((d) => !d.keep && d.id === r.id && d.tier === r.tier));
  let removed = 0;
  if (!dryRun && doomed.length > 0) {
    const keys = await store.deleteRuns(doomed);
    removed = doomed.length;
    log.info({ runs: doomed.length, keys, store: store.url }, 'pruned offsite');
  }
  return { where: store.url, decisions, removed };
}

/**
 * The size drops in the volume, and the runs retention keeps for them until a person acknowledges each
 * (`backup-sidecar ack`): the same holds apply to the volume and every remote target.
 */
export async function sizeDropHolds(backupDir: string, signing: SigningKeys | undefined, sizeDrop: SizeDropConfig, notAfter: Date): Promise<{ drops: Drop[]; holds: Map<string, string> }> {
  const drops = volumeDrops(await listRuns(backupDir, signing), sizeDrop, notAfter);
  return { drops, holds: dropHolds(drops) };
}

/** WAL_ARCHIVE: archived WAL older than the oldest base backup still in the volume goes; none kept, nothing goes. */
export async function pruneWalBehindBases(backupDir: string, targets: readonly OffsiteStore[], log: Logger): Promise<void> {
  const bases = (await listRuns(backupDir))
    .filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE)
    .flatMap((r) => r.manifest!.artifacts.filter((a) => a.kind === 'basebackup'));
  const removed = await pruneWal(backupDir, bases);
  if (removed.length === 0) return;
  log.info({ segments: removed.length, first: removed[0], last: removed.at(-1) }, 'pruned WAL no kept base backup needs');
  // The same names in every remote target; one that fails keeps them (the bucket's lifecycle rule is the backstop).
  for (const target of targets) {
    await target.deleteWal(removed.flatMap((f) => [f, `${f}${WAL_SIG_SUFFIX}`])).catch((error: unknown) => log.warn({ target: target.url, err: describe(error) }, 'cannot prune WAL in a remote target'));
  }
}
