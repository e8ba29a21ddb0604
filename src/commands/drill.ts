import type { Context } from '../context.ts';
import { drill } from '../run/drill.ts';

/** `verify --restore [ref]`: the drill's checks, one line each; exit 1 when any failed. */
export async function drillCommand(ctx: Context, ref: string, trustUnsigned: boolean): Promise<number> {
  const { report } = await drill(ctx, ref, trustUnsigned);
  for (const c of report.checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.check}: ${c.detail}\n`);
  const failed = report.checks.filter((c) => !c.ok).length;
  const seconds = (report.durationMs / 1000).toFixed(1);
  process.stdout.write(
    failed === 0
      ? `run ${report.runId}: restore drill passed (${report.checks.length} checks, ${seconds} s)\n`
      : `run ${report.runId}: restore drill FAILED (${failed} of ${report.checks.length} checks, ${seconds} s)\n`,
  );
  return failed === 0 ? 0 : 1;
}
