import type { Context } from '../context.ts';
import { pruneOffsite, pruneVolume, pruneWalBehindBases, sizeDropHolds, type PruneReport } from '../run/prune.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { table } from './list.ts';

/** `prune [--dry-run]`: retention applied to the volume and the offsite store, every run with its reason. */
export async function pruneCommand(ctx: Context, dryRun: boolean): Promise<number> {
  const { config, log, signal } = ctx;
  const targets = await ctx.targets();
  const reports: PruneReport[] = await withVolumeLock(config.backupDir, log, async () => {
    const { holds } = await sizeDropHolds(config.backupDir, config.signing, config.sizeDrop, ctx.notAfter());
    const all = [await pruneVolume(config.backupDir, { ...ctx.retention(), holds }, log, dryRun, targets.length > 0, config.signing)];
    for (const target of targets) all.push(await pruneOffsite(target, { ...ctx.retention(target.retention), holds }, log, dryRun, config.signing));
    if (config.wal.enabled && !dryRun) await pruneWalBehindBases(config.backupDir, targets, log);
    return all;
  }, { waitMs: config.lockWaitMs, signal });
  const rows = [['WHERE', 'TIER', 'RUN', 'ACTION', 'REASON']];
  for (const report of reports) {
    for (const d of report.decisions) rows.push([report.where, d.tier, d.id, d.keep ? 'keep' : dryRun ? 'would remove' : 'removed', d.reason]);
  }
  process.stdout.write(rows.length > 1 ? `${table(rows)}\n` : 'no runs\n');
  return 0;
}
