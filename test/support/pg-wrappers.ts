import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PG15_BIN } from './postgres-server.ts';

/**
 * A client folder of tiny wrappers around the real PostgreSQL 15 tools: each records its argv and
 * environment keys, and pg_dump can be told to die after some bytes, as a crashing pg_dump would.
 */
export async function wrapperBin(dir: string, options: { dieAfterBytes?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const tool of ['pg_dump', 'pg_restore', 'psql']) {
    const real = join(PG15_BIN, tool);
    const body =
      tool === 'pg_dump' && options.dieAfterBytes !== undefined
        ? `case "$1" in --version) exec ${real} "$@";; esac\n${real} "$@" | head -c ${options.dieAfterBytes}\necho "pg_dump: error: simulated crash" >&2\nexit 1\n`
        : `exec ${real} "$@"\n`;
    await writeFile(join(dir, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> ${join(dir, 'argv.log')}\n${body}`);
    await chmod(join(dir, tool), 0o755);
  }
  return dir;
}
