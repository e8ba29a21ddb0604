import prettyBytes from 'pretty-bytes';
import { buildSources } from '../app.ts';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { backupRun } from '../run/backup.ts';
import { withVolumeLock } from '../volume/lock.ts';

/** `backup`: one run of every configured source into the daily tier. */
export async function backupCommand(config: Config, log: Logger): Promise<number> {
  const result = await withVolumeLock(config.backupDir, log, async () => {
    const { sources, server } = await buildSources(config, log);
    return backupRun({ backupDir: config.backupDir, tier: 'daily', label: config.label, sources, server, log });
  });
  const bytes = result.manifest.artifacts.reduce((s, a) => s + a.size, 0);
  const warnings = result.manifest.warnings.length > 0 ? `, ${result.manifest.warnings.length} warning(s)` : '';
  process.stdout.write(`${result.runDir} (${result.manifest.artifacts.length} artifacts, ${prettyBytes(bytes)}${warnings})\n`);
  return 0;
}
