import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import type { Config } from '../config/config.ts';
import { listRuns, runSize } from '../volume/runs.ts';

/** Pads columns to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** `list [--json]`: every run in the volume, newest first. */
export async function listCommand(config: Config, json: boolean, now = new Date()): Promise<number> {
  const runs = await listRuns(config.backupDir);
  if (json) {
    const out = runs.map((r) => ({
      id: r.id,
      tier: r.tier,
      label: r.manifest?.label ?? r.label ?? null,
      time: r.time.toISOString(),
      dir: r.dir,
      size: runSize(r),
      artifacts: r.manifest?.artifacts.map((a) => ({ file: a.file, kind: a.kind, source: a.source, size: a.size })) ?? [],
      warnings: r.manifest?.warnings ?? [],
      problem: r.problem ?? null,
    }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  if (runs.length === 0) {
    process.stdout.write(`no backup runs in ${config.backupDir} yet\n`);
    return 0;
  }
  const rows = [['TIER', 'RUN', 'LABEL', 'AGE', 'SIZE', 'ARTIFACTS']];
  for (const r of runs) {
    rows.push([
      r.tier,
      r.id,
      r.manifest?.label ?? '-',
      ms(Math.max(0, now.getTime() - r.time.getTime())),
      r.manifest === undefined ? '?' : prettyBytes(runSize(r)),
      r.manifest === undefined ? `damaged: ${r.problem}` : r.manifest.artifacts.map((a) => a.file).join(', '),
    ]);
  }
  process.stdout.write(`${table(rows)}\n`);
  return 0;
}
