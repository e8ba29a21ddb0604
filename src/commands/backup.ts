import prettyBytes from 'pretty-bytes';
import type { Context } from '../context.ts';
import type { Series } from '../manifest.ts';
import type { Tier } from '../naming.ts';
import { backupJob } from '../run/job.ts';

/**
 * `backup [--tier T]` (and `basebackup`, a run of the base backup series): one backup job (see backupJob). Exit 1 when the run failed, or when it succeeded
 * but its offsite copy or a hook did not: the local run is kept either way.
 */
export async function backupCommand(ctx: Context, tier: Tier | undefined, series: Series = 'dumps'): Promise<number> {
  const { run, error } = await backupJob(ctx, tier, series);
  if (run !== undefined) {
    const m = run.manifest;
    const bytes = m.artifacts.reduce((s, a) => s + a.size, 0);
    const warnings = m.warnings.length > 0 ? `, ${m.warnings.length} warning(s)` : '';
    const offsite = m.offsite === null ? '' : `, offsite: ${m.offsite.state}`;
    process.stdout.write(`${run.runDir} (${m.artifacts.length} artifacts, ${prettyBytes(bytes)}${warnings}${offsite})\n`);
  }
  if (error !== undefined) throw error;
  return 0;
}
