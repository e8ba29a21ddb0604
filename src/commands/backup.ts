import prettyBytes from 'pretty-bytes';
import { buildSources, offsiteStore, retentionOptions } from '../app.ts';
import type { Config } from '../config/config.ts';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { PRE_RESTORE, type Tier } from '../naming.ts';
import { tierFor } from '../retention/tiers.ts';
import { backupRun } from '../run/backup.ts';
import { shipPending } from '../run/offsite.ts';
import { pruneOffsite, pruneVolume } from '../run/prune.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { listRuns } from '../volume/runs.ts';

/**
 * `backup [--tier T]`: one run of every configured source, into its tier (first of year, month, ISO
 * week, else daily), streamed offsite when S3 is set; then earlier runs missing offsite are uploaded and
 * both places are pruned. Exit 1 when the offsite part failed: the local run is kept either way.
 */
export async function backupCommand(config: Config, log: Logger, options: { tier: Tier | undefined }): Promise<number> {
  const store = await offsiteStore(config, log);
  const problems: string[] = [];
  const result = await withVolumeLock(config.backupDir, log, async () => {
    const earlier = (await listRuns(config.backupDir)).filter((r) => r.manifest !== undefined && r.tier !== PRE_RESTORE);
    const tier = options.tier ?? tierFor(new Date(), earlier.map((r) => r.time), config.timeZone);
    // Part sizes grow with the artifact: the newest earlier run says how big each file has become.
    const expectedSizes = new Map<string, number>();
    for (const run of earlier) for (const a of run.manifest!.artifacts) if (!expectedSizes.has(a.file)) expectedSizes.set(a.file, a.size);

    const { sources, server } = await buildSources(config, log);
    const run = await backupRun({ backupDir: config.backupDir, tier, label: config.label, sources, server, log, offsite: store, expectedSizes });
    if (run.offsiteError !== undefined) problems.push(`not offsite: ${run.offsiteError.message}; the run is kept in the volume and the next run uploads it`);
    if (store !== undefined && run.offsiteError === undefined) {
      try {
        const shipped = await shipPending(config.backupDir, store, retentionOptions(config, 'offsite'), log, () => new Date());
        if (shipped.error !== undefined) problems.push(`${shipped.waiting.length} earlier run(s) still not offsite: ${shipped.error.message}`);
        await pruneOffsite(store, retentionOptions(config, 'offsite'), log, false);
      } catch (error) {
        problems.push(describe(error));
      }
    }
    await pruneVolume(config.backupDir, retentionOptions(config, 'volume'), log, false, store?.url);
    return run;
  });
  const bytes = result.manifest.artifacts.reduce((s, a) => s + a.size, 0);
  const warnings = result.manifest.warnings.length > 0 ? `, ${result.manifest.warnings.length} warning(s)` : '';
  const offsite = result.manifest.offsite === null ? '' : `, offsite: ${result.manifest.offsite.state}`;
  process.stdout.write(`${result.runDir} (${result.manifest.artifacts.length} artifacts, ${prettyBytes(bytes)}${warnings}${offsite})\n`);
  if (problems.length > 0) throw new RunError(problems.join('\n'));
  return 0;
}
