import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { verify } from '../run/verify.ts';

/** `verify [run|file|latest]`: exit 1 when any artifact fails its checks. */
export async function verifyCommand(config: Config, log: Logger, ref: string, trustUnsigned: boolean, signal: AbortSignal | undefined): Promise<number> {
  const result = await verify(config, log, ref, trustUnsigned, signal);
  for (const c of result.checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.file}: ${c.detail}\n`);
  const failed = result.checks.filter((c) => !c.ok).length;
  process.stdout.write(failed === 0 ? `run ${result.runId}: all ${result.checks.length} artifacts verified\n` : `run ${result.runId}: ${failed} of ${result.checks.length} artifacts failed\n`);
  return failed === 0 ? 0 : 1;
}
