import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { RunError, describe } from '../../errors.ts';
import { libpqEnv, pgError, query } from '../../pg/psql.ts';
import type { PgServer } from '../../pg/server.ts';
import type { GlobalsArtifact } from './artifact.ts';
import { parseGlobals } from './sql.ts';

/**
 * Recreates roles and tablespaces from a globals file, before the databases that need them. The file is
 * never run as a psql script: each statement, checked by parseGlobals, is handed to psql base64-encoded
 * and run with \gexec, which sends it to the server as it is (no meta-command, no variable is ever
 * interpreted in it). Roles that exist keep existing (their attributes are set as in the file); the
 * role this tool connects as is left alone, so its password on this server stays the one the sidecar
 * uses. Any other error fails.
 */
export async function restoreGlobals(server: PgServer, maintenanceDb: string, path: string, artifact: GlobalsArtifact): Promise<string> {
  const parsed = parseGlobals(await readFile(path, 'utf8').catch((error: unknown) => {
    throw new RunError(`cannot read ${artifact.file}: ${describe(error)}`);
  }));
  const me = (await query(server.client, server.conn, maintenanceDb, 'SELECT current_user;'))[0]?.[0] ?? '';
  const script = parsed.statements
    .filter((s) => s.role !== me)
    .map((s) => `SELECT convert_from(decode('${Buffer.from(s.sql).toString('base64')}', 'base64'), 'UTF8') \\gexec\n`)
    .join('');
  const result = await execa(join(server.client.binDir, 'psql'), ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=0', '-f', '-'], {
    input: `SET standard_conforming_strings = on;\n${script}`,
    env: libpqEnv(server.conn, maintenanceDb),
    reject: false,
  });
  const errors = result.stderr.split('\n').filter((l) => /\bERROR:/.test(l) && !/ERROR:\s+role ".*" already exists/.test(l));
  if (result.exitCode !== 0 || errors.length > 0) {
    const why = errors[0]?.replace(/^psql:[^:]*:\d+: /, '') ?? pgError(result.stderr);
    throw new RunError(`restoring roles and tablespaces from ${artifact.file} failed: ${why}`);
  }
  const present = new Set((await query(server.client, server.conn, maintenanceDb, 'SELECT rolname FROM pg_roles;')).map((r) => r[0]));
  const missing = artifact.roles.filter((r) => !present.has(r));
  if (missing.length > 0) throw new RunError(`after restoring ${artifact.file}, roles are missing: ${missing.join(', ')}`);
  return `${artifact.roles.length} roles${artifact.tablespaces.length > 0 ? ` and ${artifact.tablespaces.length} tablespaces` : ''} present`;
}
