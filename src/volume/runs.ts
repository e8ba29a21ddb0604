import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SizeDropConfig } from '../config/config.ts';
import { describe } from '../errors.ts';
import { findDrops, type Drop } from '../retention/drops.ts';
import { isFutureDated } from '../retention/policy.ts';
import { readManifest, type Manifest } from '../manifest.ts';
import { ACK_FILE, PRE_RESTORE, RUN_TIERS, parseRunId, type RunTier } from '../naming.ts';
import type { SignatureState, SigningKeys } from '../crypto/signing.ts';
import { readDrillReport, type DrillReport } from './drill-report.ts';
import { runSignature } from './signature.ts';
import { assertNoLinks } from './links.ts';

/**
 * Which runs a command may use: none dated after `notAfter` (now plus CLOCK_SKEW_MAX) counts as the
 * newest; with a signing key, only runs whose signature matches (or, with trustUnsigned, that have none).
 */
export interface RunTrust {
  notAfter: Date;
  signing: SigningKeys | undefined;
  trustUnsigned: boolean;
}

/** A run folder in the volume. */
export interface StoredRun {
  id: string;
  tier: RunTier;
  dir: string;
  time: Date;
  label: string | undefined;
  /** Undefined when the manifest is missing or damaged; `problem` says why. */
  manifest: Manifest | undefined;
  problem: string | undefined;
  /** The run's last restore drill (verify.json), if any. */
  drill: DrillReport | undefined;
  /** With a signing key: whether manifest.json.sig matches; undefined without a key. */
  signature: SignatureState | undefined;
  /** Whether a person acknowledged this run's size drop (ack.json). */
  acknowledged: boolean;
}

/** Every run in the volume, newest first, its signature checked when a key is given. Names that are not ours are ignored. */
export async function listRuns(backupDir: string, signing?: SigningKeys): Promise<StoredRun[]> {
  await assertNoLinks(backupDir);
  const runs: StoredRun[] = [];
  for (const tier of RUN_TIERS) {
    const tierDir = join(backupDir, tier);
    const names = await readdir(tierDir, { withFileTypes: true }).catch(() => []);
    for (const entry of names) {
      const parsed = entry.isDirectory() ? parseRunId(entry.name) : undefined;
      if (parsed === undefined) continue;
      const dir = join(tierDir, entry.name);
      let manifest: Manifest | undefined;
      let problem: string | undefined;
      try {
        manifest = await readManifest(dir, { id: parsed.id, tier });
      } catch (error) {
        problem = describe(error);
      }
      const signature = signing === undefined || manifest === undefined ? undefined : await runSignature(dir, signing);
      const acknowledged = (await lstat(join(dir, ACK_FILE)).catch(() => undefined))?.isFile() === true;
      runs.push({ id: parsed.id, tier, dir, time: parsed.time, label: parsed.label, manifest, problem, drill: await readDrillReport(dir), signature, acknowledged });
    }
  }
  return runs.sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
}

export function runSize(run: StoredRun): number {
  return run.manifest?.artifacts.reduce((sum, a) => sum + a.size, 0) ?? 0;
}

/**
 * The size drops among the runs that count (complete, not a safety backup, not dated after `notAfter`,
 * signature not wrong), newest run first.
 */
export function volumeDrops(runs: readonly StoredRun[], sizeDrop: SizeDropConfig, notAfter: Date): Drop[] {
  const counted = runs.filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE && !isFutureDated(r.time, notAfter) && r.signature !== 'invalid');
  return findDrops(
    counted.map((r) => ({ id: r.id, time: r.time, acknowledged: r.acknowledged, artifacts: r.manifest!.artifacts.map((a) => ({ source: a.source, kind: a.kind, size: a.size, rowCounts: a.kind === 'postgres' ? a.rowCounts : undefined })) })),
    sizeDrop,
  );
}
