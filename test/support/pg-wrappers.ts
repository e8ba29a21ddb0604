import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PG15_BIN } from './postgres-server.ts';

/**
 * A client folder of tiny wrappers around the real PostgreSQL 15 tools: each records its argv and
 * environment keys; pg_dump can be told to die after some bytes, as a crashing pg_dump would, or to
 * take at least `slowSeconds` (its output paced by a process that exits when killed, closing the pipe).
 */
export async function wrapperBin(
  dir: string,
  options: { dieAfterBytes?: number; slowSeconds?: number; recordEnv?: boolean; hold?: { tool: string; when: string } } = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const tool of ['pg_dump', 'pg_restore', 'psql', 'pg_dumpall']) {
    const real = join(PG15_BIN, tool);
    const pace = `import subprocess, sys, time
p = subprocess.Popen([${JSON.stringify(real)}] + sys.argv[1:], stdout=subprocess.PIPE)
data = p.stdout.read()
for i in range(0, max(len(data), 1), max(len(data) // 20, 1)):
    sys.stdout.buffer.write(data[i:i + max(len(data) // 20, 1)]); sys.stdout.flush(); time.sleep(${(options.slowSeconds ?? 0) / 20})
sys.exit(p.wait())`;
    const body =
      tool === 'pg_dump' && options.dieAfterBytes !== undefined
        ? `case "$1" in --version) exec ${real} "$@";; esac\n${real} "$@" | head -c ${options.dieAfterBytes}\necho "pg_dump: error: simulated crash" >&2\nexit 1\n`
        : tool === 'pg_dump' && options.slowSeconds !== undefined
          ? `case "$1" in --version) exec ${real} "$@";; esac\nexec python3 -c '${pace}' "$@"\n`
          : `exec ${real} "$@"\n`;
    // With recordEnv, each call leaves the environment it was given in env.<tool>.<pid>.
    const envLine = options.recordEnv === true ? `env > ${join(dir, `env.${tool}`)}.$$\n` : '';
    // With hold, a call whose arguments contain `when` says so in <tool>.held and waits for the file `go`:
    // an exact point at which a test can interrupt the run.
    const holdLine =
      options.hold?.tool === tool
        ? `case "$*" in *${options.hold.when}*) touch ${join(dir, `${tool}.held`)}; while [ ! -e ${join(dir, 'go')} ]; do sleep 0.05; done;; esac\n`
        : '';
    await writeFile(join(dir, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> ${join(dir, 'argv.log')}\n${envLine}${holdLine}${body}`);
    await chmod(join(dir, tool), 0o755);
  }
  return dir;
}
