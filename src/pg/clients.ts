import { readdir, realpath } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { execa } from 'execa';
import { RunError, UsageError, firstLine } from '../errors.ts';
import { pathExists } from '../util/fs.ts';

/** One installed set of PostgreSQL client tools (pg_dump, pg_restore, psql of one major). */
export interface PgClient {
  major: number;
  /** As pg_dump --version prints it, e.g. "15.18". */
  version: string;
  binDir: string;
}

export interface ClientChoice {
  client: PgClient;
  /** Why this client, for the log and the manifest. */
  reason: string;
}

const TOOLS = ['pg_dump', 'pg_restore', 'psql'] as const;
/** Debian and the PostgreSQL project's apt packages install each major here. */
/** Where Debian (and the image) keeps each major's binaries: <root>/<major>/bin. */
export const DEBIAN_ROOT = '/usr/lib/postgresql';

async function probe(binDir: string): Promise<PgClient | undefined> {
  for (const tool of TOOLS) if (!(await pathExists(join(binDir, tool)))) return undefined;
  // Debian's /usr/bin/pg_dump is pg_wrapper, which picks a version by its own rules: skip it.
  if (basename(await realpath(join(binDir, 'pg_dump'))) !== 'pg_dump') return undefined;
  const { stdout } = await execa(join(binDir, 'pg_dump'), ['--version']);
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(stdout);
  if (m === null) return undefined;
  return { major: Number(m[1]), version: m[2] === undefined ? m[1]! : `${m[1]}.${m[2]}`, binDir };
}

/**
 * Finds the installed client majors: PG_BIN_DIR alone when set, else every
 * /usr/lib/postgresql/<major>/bin, then PATH. One client per major, newest first.
 */
export async function discoverClients(binDir: string | undefined, searchRoot = DEBIAN_ROOT): Promise<PgClient[]> {
  if (binDir !== undefined) {
    const client = await probe(binDir).catch(() => undefined);
    if (client === undefined) {
      throw new UsageError(`PG_BIN_DIR="${binDir}": it must hold pg_dump, pg_restore and psql (example: PG_BIN_DIR=/usr/lib/postgresql/17/bin)`);
    }
    return [client];
  }
  const dirs: string[] = [];
  const majors = await readdir(searchRoot).catch(() => [] as string[]);
  for (const m of majors.filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a))) dirs.push(join(searchRoot, m, 'bin'));
  dirs.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  const found = new Map<number, PgClient>();
  for (const dir of dirs) {
    const client = await probe(dir).catch(() => undefined);
    if (client !== undefined && !found.has(client.major)) found.set(client.major, client);
  }
  return [...found.values()].sort((a, b) => b.major - a.major);
}

/**
 * Picks the client for a server: its own major, else the nearest newer one. A newer pg_dump can read an
 * older server, but its dump may not restore into that older server (pg_dump 17+ writes
 * SET transaction_timeout), so the same major always wins. An older pg_dump refuses a newer server.
 */
export function chooseClient(serverMajor: number, serverVersion: string, clients: PgClient[]): ClientChoice {
  const same = clients.find((c) => c.major === serverMajor);
  if (same !== undefined) return { client: same, reason: `same major as the server (${serverMajor})` };
  const newer = clients.filter((c) => c.major > serverMajor).sort((a, b) => a.major - b.major)[0];
  if (newer !== undefined) {
    return { client: newer, reason: `no client of major ${serverMajor} installed; ${newer.major} is the nearest newer one` };
  }
  const found = clients.length === 0 ? 'none' : clients.map((c) => `${c.version} (${c.binDir})`).join(', ');
  throw new RunError(
    `no PostgreSQL client can dump server ${serverVersion}: clients found: ${found}; install the client of major ${serverMajor} or newer and point PG_BIN_DIR at it`,
  );
}

/** The newest client: reads dumps of every older format, for work that needs no server. */
export function newestClient(clients: PgClient[]): PgClient {
  const newest = clients[0];
  if (newest === undefined) {
    throw new RunError('no PostgreSQL client tools (pg_dump, pg_restore, psql) found: install them or set PG_BIN_DIR');
  }
  return newest;
}

/** Version line of a tool, e.g. "pg_dump (PostgreSQL) 15.18". */
export async function toolVersion(client: PgClient, tool: (typeof TOOLS)[number]): Promise<string> {
  const { stdout } = await execa(join(client.binDir, tool), ['--version']).catch((error: { stderr?: string }) => {
    throw new RunError(`${tool} --version failed: ${firstLine(error.stderr)}`);
  });
  return stdout.trim();
}
