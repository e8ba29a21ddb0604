import { retentionOptions } from '../app.ts';
import { remoteTargets } from '../offsite/targets.ts';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { pruneOffsite, pruneVolume, type PruneReport } from '../run/prune.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { table } from './list.ts';

/** `prune [--dry-run]`: retention applied to the volume and the offsite store, every run with its reason. */
export async function pruneCommand(config: Config, log: Logger, dryRun: boolean, signal: AbortSignal | undefined): Promise<number> {
  const targets = await remoteTargets(config, log);
  const reports: PruneReport[] = await withVolumeLock(config.backupDir, log, async () => {
    const all = [await pruneVolume(config.backupDir, retentionOptions(config), log, dryRun, targets.length > 0, config.signing)];
    for (const target of targets) all.push(await pruneOffsite(target, retentionOptions(config, target.retention), log, dryRun, config.signing));
    return all;
  }, { waitMs: config.lockWaitMs, signal });
  const rows = [['WHERE', 'TIER', 'RUN', 'ACTION', 'REASON']];
  for (const report of reports) {
    for (const d of report.decisions) rows.push([report.where, d.tier, d.id, d.keep ? 'keep' : dryRun ? 'would remove' : 'removed', d.reason]);
  }
  process.stdout.write(rows.length > 1 ? `${table(rows)}\n` : 'no runs\n');
  return 0;
}
