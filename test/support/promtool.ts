import { execa } from 'execa';

/** Runs Prometheus's promtool (Debian's prometheus package; .ci/run installs it), `input` on stdin. */
export async function promtool(args: string[], input = ''): Promise<{ exitCode: number; all: string }> {
  const found = await execa('sh', ['-c', 'command -v promtool'], { reject: false });
  if (found.exitCode !== 0) throw new Error('promtool not found: the monitoring tests need it (apt-get install prometheus; .ci/run installs it)');
  const result = await execa('promtool', args, { input, reject: false, all: true });
  return { exitCode: result.exitCode ?? -1, all: result.all ?? '' };
}
