import type { Context } from '../context.ts';
import { verify } from '../run/verify.ts';

/** `verify [run|file|latest]`: exit 1 when any artifact fails its checks. */
export async function verifyCommand(ctx: Context, ref: string, trustUnsigned: boolean): Promise<number> {
  const result = await verify(ctx, ref, trustUnsigned);
  for (const c of result.checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.file}: ${c.detail}\n`);
  const failed = result.checks.filter((c) => !c.ok).length;
  process.stdout.write(failed === 0 ? `run ${result.runId}: all ${result.checks.length} artifacts verified\n` : `run ${result.runId}: ${failed} of ${result.checks.length} artifacts failed\n`);
  return failed === 0 ? 0 : 1;
}
