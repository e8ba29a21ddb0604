import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import { suspiciousLine } from '../health/health.ts';
import { isFutureDated } from '../retention/policy.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { MANIFEST, SIGNATURE } from '../naming.ts';
import type { RemoteRun } from '../offsite/store.ts';
import { missingVolume } from '../volume/resolve.ts';
import { listRuns, runSize } from '../volume/runs.ts';

/** Pads columns to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** `list --remote [--json]`: the runs in each remote target, newest first. */
export async function listRemoteCommand(ctx: Context, json: boolean): Promise<number> {
  const now = ctx.now();
  const targets = await ctx.targets();
  if (targets.length === 0) throw new UsageError('list --remote needs a remote target: S3_BUCKET (example: S3_BUCKET=my-backups) or SFTP_HOST');
  const size = (r: RemoteRun) => r.files.reduce((s, f) => s + f.size, 0);
  const all: { target: string; runs: RemoteRun[] }[] = [];
  for (const target of targets) all.push({ target: target.url, runs: await target.listRuns() });
  if (json) {
    const out = all.flatMap(({ target, runs }) => runs.map((r) => ({ target, id: r.id, tier: r.tier, time: r.time.toISOString(), complete: r.complete, size: size(r), files: r.files })));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  for (const { target, runs } of all) {
    if (all.length > 1) process.stdout.write(`${target}:\n`);
    if (runs.length === 0) {
      process.stdout.write(`no backup runs in ${target} yet\n`);
      continue;
    }
    const rows = [['TIER', 'RUN', 'AGE', 'SIZE', 'STATE', 'FILES']];
    for (const r of runs) {
      rows.push([
        r.tier,
        r.id,
        ms(Math.max(0, now.getTime() - r.time.getTime())),
        prettyBytes(size(r)),
        r.complete ? 'complete' : 'incomplete (no manifest)',
        r.files.filter((f) => f.file !== MANIFEST && f.file !== SIGNATURE).map((f) => f.file).join(', '),
      ]);
    }
    process.stdout.write(`${table(rows)}\n`);
  }
  return 0;
}

/** `list [--json]`: every run in the volume, newest first. */
export async function listCommand(ctx: Context, json: boolean): Promise<number> {
  const { config } = ctx;
  const now = ctx.now();
  const runs = await listRuns(config.backupDir);
  const notAfter = ctx.notAfter();
  const suspicious = runs.filter((r) => isFutureDated(r.time, notAfter));
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
      offsite: r.manifest?.offsite ?? null,
      problem: r.problem ?? null,
      drill: r.drill ?? null,
      suspicious: isFutureDated(r.time, notAfter) ? 'dated in the future' : null,
    }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  if (runs.length === 0) {
    const missing = await missingVolume(config.backupDir);
    if (missing !== undefined) throw new UsageError(missing);
    process.stdout.write(`no backup runs in ${config.backupDir} yet\n`);
    return 0;
  }
  const rows = [['TIER', 'RUN', 'LABEL', 'AGE', 'SIZE', 'OFFSITE', 'DRILL', 'ARTIFACTS']];
  for (const r of runs) {
    rows.push([
      r.tier,
      r.id,
      r.manifest?.label ?? '-',
      isFutureDated(r.time, notAfter) ? 'FUTURE' : ms(Math.max(0, now.getTime() - r.time.getTime())),
      r.manifest === undefined ? '?' : prettyBytes(runSize(r)),
      r.manifest?.offsite?.state ?? '-',
      r.drill === undefined ? '-' : r.drill.ok ? 'passed' : 'FAILED',
      r.manifest === undefined ? `damaged: ${r.problem}` : r.manifest.artifacts.map((a) => a.file).join(', '),
    ]);
  }
  process.stdout.write(`${table(rows)}\n${suspicious.length > 0 ? `${suspiciousLine(suspicious)}\n` : ''}`);
  return 0;
}
