import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { RunError, firstLine } from '../errors.ts';
import type { PgClient } from './clients.ts';

/** Where and as whom to connect. The password never leaves this object but through libpqEnv. */
export interface Connection {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
}

const FIELD = '\x1f';

/**
 * libpq settings as environment variables: the password reaches the tools only this way (never argv),
 * and the database name is not parsed as a connection string as --dbname would.
 */
export function libpqEnv(conn: Connection, database: string): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: conn.host,
    PGPORT: String(conn.port),
    PGUSER: conn.user,
    PGDATABASE: database,
    PGAPPNAME: 'backup-sidecar',
    PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? '10',
  };
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  return env;
}

/**
 * A database name as a `--dbname` argument libpq cannot expand: a name holding `=` or starting with
 * `postgresql://` would otherwise be read as a connection string (`host=evil dbname=x` sends the
 * password to another server). Only the quoted dbname key is set; host, user and password still come
 * from libpqEnv.
 */
export function dbnameArg(database: string): string {
  return `dbname='${database.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** psql's complaint without its "psql: error: " prefix. */
export function pgError(stderr: string | undefined): string {
  return firstLine(stderr).replace(/^(psql|pg_dump|pg_restore|pg_basebackup|pg_receivewal): (error: )?/, '');
}

/** Why a PostgreSQL tool run with encoding 'buffer' failed: its complaint, or the signal that killed it. */
export function toolFailure(error: { stderr?: Uint8Array | string; signal?: string }): string {
  const stderr = typeof error.stderr === 'string' ? error.stderr : new TextDecoder().decode(error.stderr);
  return pgError(stderr) || (error.signal ? `killed by ${error.signal}` : 'it failed');
}

function where(conn: Connection, database: string): string {
  return `PostgreSQL at ${conn.host}:${conn.port} (user ${conn.user}, database ${database})`;
}

const PSQL_ARGS = ['-X', '-q', '-A', '-t', '-w', '-F', FIELD, '-v', 'ON_ERROR_STOP=1'];

function parseRows(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split(FIELD));
}

/**
 * Runs SQL through psql and returns the rows. `vars` become psql variables, so values are quoted by
 * psql itself (:'name' as a literal, :"name" as an identifier), never by string concatenation.
 */
export async function query(
  client: PgClient,
  conn: Connection,
  database: string,
  sql: string,
  vars: Record<string, string> = {},
): Promise<string[][]> {
  const varArgs = Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]);
  try {
    const { stdout } = await execa(join(client.binDir, 'psql'), [...PSQL_ARGS, ...varArgs, '-f', '-'], {
      input: sql,
      env: libpqEnv(conn, database),
    });
    return parseRows(stdout);
  } catch (error) {
    const e = error as { exitCode?: number; stderr?: string };
    if (e.exitCode === 2) throw new RunError(`cannot connect to ${where(conn, database)}: ${pgError(e.stderr)}`);
    throw new RunError(`query on ${where(conn, database)} failed: ${pgError(e.stderr)}`);
  }
}

/**
 * A psql session kept open across queries: holds the transaction whose snapshot pg_dump shares, so that
 * row counts describe exactly the data in the dump, even while the application writes.
 */
export class PsqlSession {
  private readonly lines: string[] = [];
  private waiter: { marker: string; resolve: (rows: string[][]) => void; reject: (e: Error) => void } | undefined;
  private exited: Error | undefined;
  private counter = 0;
  /** psql answers in order; queries wait their turn. */
  private queue: Promise<unknown> = Promise.resolve();

  private readonly child: ResultPromise;

  private constructor(child: ResultPromise, label: string) {
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.then(
      () => this.onExit(new RunError(`psql session on ${label} ended early`)),
      (error: { stderr?: string; exitCode?: number }) =>
        this.onExit(
          new RunError(
            error.exitCode === 2
              ? `cannot connect to ${label}: ${pgError(error.stderr)}`
              : `query on ${label} failed: ${pgError(error.stderr)}`,
          ),
        ),
    );
  }

  static async open(client: PgClient, conn: Connection, database: string): Promise<PsqlSession> {
    const child = execa(join(client.binDir, 'psql'), [...PSQL_ARGS, '-f', '-'], {
      env: libpqEnv(conn, database),
      stdin: 'pipe',
      stdout: 'pipe',
      buffer: { stdout: false },
    });
    const session = new PsqlSession(child, where(conn, database));
    // A first round trip surfaces connection errors here rather than in the middle of a run.
    await session.query('SELECT 1;');
    return session;
  }

  private onLine(line: string): void {
    if (this.waiter !== undefined && line === this.waiter.marker) {
      const rows = this.lines.splice(0).filter((l) => l.length > 0).map((l) => l.split(FIELD));
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve(rows);
    } else {
      this.lines.push(line);
    }
  }

  private onExit(error: Error): void {
    this.exited = error;
    this.waiter?.reject(error);
    this.waiter = undefined;
  }

  /** Sends SQL (psql meta-commands allowed) and resolves with the rows it printed. */
  query(sql: string): Promise<string[][]> {
    const run = this.queue.then(() => this.send(sql));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send(sql: string): Promise<string[][]> {
    if (this.exited !== undefined) return Promise.reject(this.exited);
    const marker = `--backup-sidecar-end-${++this.counter}--`;
    return new Promise((resolve, reject) => {
      this.waiter = { marker, resolve, reject };
      this.child.stdin!.write(`${sql}\n\\echo ${marker}\n`);
    });
  }

  /** Ends the session (committing nothing: the session only reads). */
  async close(): Promise<void> {
    if (this.exited === undefined) {
      this.child.stdin!.end('ROLLBACK;\n\\q\n');
    }
    await this.child.catch(() => undefined);
  }

  /** Stops the session at once. */
  kill(): void {
    this.child.kill();
  }
}

/** The server's version, e.g. { num: 150018, text: "15.18 (Debian ...)" }. */
export async function serverVersion(
  client: PgClient,
  conn: Connection,
  database: string,
): Promise<{ major: number; num: number; text: string }> {
  const rows = await query(client, conn, database, `SELECT current_setting('server_version_num'), current_setting('server_version');`);
  const num = Number(rows[0]?.[0]);
  return { num, major: Math.floor(num / 10000), text: rows[0]?.[1] ?? String(num) };
}
