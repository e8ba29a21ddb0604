import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { execa } from 'execa';
import { RunError, describe } from '../../errors.ts';
import { parseGlobals } from './sql.ts';
import type { Logger } from '../../log.ts';
import type { GlobalsArtifact } from './artifact.ts';
import { GLOBALS_FILE } from '../../naming.ts';
import { dbnameArg, libpqEnv, toolFailure } from '../../pg/psql.ts';
import type { PgServer } from '../../pg/server.ts';
import type { BackupSource, Production } from '../source.ts';

/** The roles and tablespaces a globals file creates; refuses a file that holds anything else (see sql.ts). */
function globalsContents(sql: string, where: string): { roles: string[]; tablespaces: string[] } {
  try {
    const { roles, tablespaces } = parseGlobals(sql);
    return { roles, tablespaces };
  } catch (error) {
    throw new RunError(`${where}: ${describe(error)}`);
  }
}

/** Reads a globals file and compares its roles with the manifest's; throws on a difference. */
export async function checkGlobalsFile(path: string, artifact: GlobalsArtifact): Promise<string> {
  const found = globalsContents(await readFile(path, 'utf8'), artifact.file);
  if (found.roles.join('\n') !== artifact.roles.join('\n')) {
    throw new RunError(`its roles (${found.roles.join(', ')}) differ from the manifest's (${artifact.roles.join(', ')})`);
  }
  return `${found.roles.length} roles and ${found.tablespaces.length} tablespaces, as in the manifest`;
}

/** The server's roles and tablespaces, with `pg_dumpall --globals-only` (POSTGRES_GLOBALS). */
export class GlobalsSource implements BackupSource {
  readonly kind = 'globals';
  readonly name = 'globals';
  readonly fileName = GLOBALS_FILE;

  private readonly server: PgServer;
  private readonly maintenanceDb: string;
  private readonly log: Logger;

  constructor(server: PgServer, maintenanceDb: string, log: Logger) {
    this.server = server;
    this.maintenanceDb = maintenanceDb;
    this.log = log;
  }

  async open(): Promise<Production> {
    const { server } = this;
    const args = ['--globals-only', '--no-password', `--database=${dbnameArg(this.maintenanceDb)}`];
    this.log.debug({ args }, 'starting pg_dumpall');
    const dump = execa(join(server.client.binDir, 'pg_dumpall'), args, {
      env: libpqEnv(server.conn, this.maintenanceDb),
      stdout: 'pipe',
      buffer: { stdout: false },
      encoding: 'buffer',
    });
    const done = (async () => {
      await dump.catch((error: { stderr?: Uint8Array | string; signal?: string }) => {
        throw new RunError(`pg_dumpall --globals-only failed (POSTGRES_GLOBALS needs a superuser): ${toolFailure(error)}`);
      });
    })();
    return {
      stream: dump.stdout,
      done,
      abort: () => dump.kill(),
      describe: async (read) => ({ kind: 'globals', format: 'sql', ...globalsContents(await text(await read()), GLOBALS_FILE) }),
    };
  }
}
