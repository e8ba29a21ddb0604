import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe } from '../errors.ts';
import { readManifest, type Manifest } from '../manifest.ts';
import { RUN_TIERS, parseRunId, type RunTier } from '../naming.ts';
import { readDrillReport, type DrillReport } from './drill-report.ts';
import { assertNoLinks } from './links.ts';

/** What makes a run count as the newest: not dated after `notAfter` (now plus CLOCK_SKEW_MAX). */
export interface RunTrust {
  notAfter: Date;
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
}

/** Every run in the volume, newest first. Names that are not ours are ignored. */
export async function listRuns(backupDir: string): Promise<StoredRun[]> {
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
      runs.push({ id: parsed.id, tier, dir, time: parsed.time, label: parsed.label, manifest, problem, drill: await readDrillReport(dir) });
    }
  }
  return runs.sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
}

export function runSize(run: StoredRun): number {
  return run.manifest?.artifacts.reduce((sum, a) => sum + a.size, 0) ?? 0;
}
