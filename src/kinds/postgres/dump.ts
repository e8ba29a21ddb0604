import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { execa } from 'execa';
import { RunError, stopped } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { DumpCompression } from '../../config/config.ts';
import { dumpFileName } from '../../naming.ts';
import { PsqlSession, libpqEnv, pgError, query, toolFailure, type Connection } from '../../pg/psql.ts';
import type { PgClient } from '../../pg/clients.ts';
import type { PgServer } from '../../pg/server.ts';
import type { BackupSource, Production } from '../source.ts';
import { compressing, decompressing, zstdProblem } from './zstd.ts';

/** Every user table (plain and partitioned). */
const USER_TABLES = `
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** Exact row counts of every user table, one query per table, all in the caller's snapshot. */
const ROW_COUNTS_SQL = `
SELECT format('SELECT %L, %L, count(*) FROM %I.%I', n.nspname, c.relname, n.nspname, c.relname)
${USER_TABLES}
ORDER BY n.nspname, c.relname
\\gexec`;
const LARGE_OBJECTS_SQL = 'SELECT count(*) FROM pg_largeobject_metadata;';

export interface TableCount {
  schema: string;
  table: string;
  rows: number;
}

export function tableKey(schema: string, table: string): string {
  return `${schema}.${table}`;
}

function toCounts(rows: string[][]): TableCount[] {
  return rows.map(([schema = '', table = '', n = '0']) => ({ schema, table, rows: Number(n) }));
}

/** Row counts and large objects of a database as it is now (used to check a restore). */
export async function countRows(client: PgClient, conn: Connection, database: string): Promise<{ tables: TableCount[]; largeObjects: number }> {
  const tables = toCounts(await query(client, conn, database, ROW_COUNTS_SQL));
  const lo = await query(client, conn, database, LARGE_OBJECTS_SQL);
  return { tables, largeObjects: Number(lo[0]?.[0] ?? 0) };
}

/** Tables of the database now (not those an extension owns: pg_dump leaves them to the extension). */
const TABLES_SQL = `
SELECT n.nspname, c.relname, c.relkind
${USER_TABLES}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2;`;

/**
 * Tables the database has now that a restore of the dump would drop: absent from the dump, or (plain
 * tables) present without their data (--schema-only, --exclude-table-data ...). One line each.
 */
export async function tablesTheDumpLacks(client: PgClient, conn: Connection, database: string, contents: DumpContents): Promise<string[]> {
  const lacking: string[] = [];
  for (const [schema = '', table = '', kind] of await query(client, conn, database, TABLES_SQL)) {
    const prefix = `${schema} ${table} `;
    if (!contents.tableLines.some((l) => l.startsWith(prefix))) lacking.push(`${tableKey(schema, table)} (not in the dump)`);
    else if (kind === 'r' && !contents.tocLines.some((l) => l.startsWith(prefix))) lacking.push(`${tableKey(schema, table)} (its data is not in the dump)`);
  }
  return lacking;
}

/** What a custom-format dump holds, read from its table of contents by pg_restore --list. */
export interface DumpContents {
  /** TABLE entries. */
  tables: number;
  /** Tables whose definition is in the dump, as `schema table` prefixes of their TOC lines. */
  tableLines: string[];
  /** Tables whose data is in the dump, as `schema table` prefixes of their TOC lines. */
  tocLines: string[];
  hasLargeObjects: boolean;
}

export async function readToc(client: PgClient, path: string, plaintext?: Readable, signal?: AbortSignal): Promise<DumpContents> {
  // From a stream (a decrypted file), pg_restore reads only the table of contents at its head and exits:
  // the rest of the stream is not wanted, so a broken pipe there is expected.
  const listing = execa(join(client.binDir, 'pg_restore'), plaintext === undefined ? ['--list', path] : ['--list'], { reject: false, stdin: plaintext === undefined ? 'ignore' : 'pipe', cancelSignal: signal });
  if (plaintext !== undefined) {
    listing.stdin?.on('error', () => undefined);
    plaintext.on('error', () => undefined).pipe(listing.stdin!);
  }
  const result = await listing;
  plaintext?.destroy();
  stopped(signal);
  if (result.exitCode !== 0) throw new RunError(`${path} is not a readable PostgreSQL custom-format dump: ${pgError(result.stderr)}`);
  const stdout = result.stdout;
  const entries = stdout.split('\n').filter((l) => /^\d+;/.test(l));
  const typeOf = (line: string) => line.replace(/^\d+;\s+\d+\s+\d+\s+/, '');
  return {
    tables: entries.filter((l) => /^TABLE (?!DATA |ATTACH )/.test(typeOf(l))).length,
    tableLines: entries.filter((l) => /^TABLE (?!DATA |ATTACH )/.test(typeOf(l))).map((l) => typeOf(l).slice('TABLE '.length)),
    tocLines: entries.filter((l) => typeOf(l).startsWith('TABLE DATA ')).map((l) => typeOf(l).slice('TABLE DATA '.length)),
    hasLargeObjects: entries.some((l) => /^(BLOBS|LARGE OBJECTS?) /.test(typeOf(l)) || /^BLOB /.test(typeOf(l))),
  };
}

/** Keeps the counts of the tables whose data the dump holds (POSTGRES_EXTRA_OPTS may leave some out). */
export function countsInDump(counts: TableCount[], contents: DumpContents): Record<string, number> {
  const result: Record<string, number> = {};
  for (const c of counts) {
    if (contents.tocLines.some((line) => line.startsWith(`${c.schema} ${c.table} `))) result[tableKey(c.schema, c.table)] = c.rows;
  }
  return result;
}

/** pg_dump's own compression switch for a setting (zstd: none, the zstd binary compresses). */
function compressArgs(c: DumpCompression): string[] {
  if (c.method === 'zstd' || c.method === 'none') return ['--compress=0'];
  if (c.method === 'gzip' && c.level !== undefined) return [`--compress=${c.level}`];
  return []; // gzip at pg_dump's default level, or -Z in POSTGRES_EXTRA_OPTS
}

/** The setting in words, for the manifest: zstd:3, gzip:6, gzip (pg_dump's default), none, or POSTGRES_EXTRA_OPTS's. */
export function compressionLabel(c: DumpCompression): string {
  if (c.method === 'zstd') return `zstd:${c.level}`;
  if (c.method === 'gzip') return c.level === undefined ? 'gzip' : `gzip:${c.level}`;
  return c.method === 'none' ? 'none' : c.setting;
}

export interface DumpSettings {
  /** POSTGRES_EXTRA_OPTS (none for a safety backup: it must be whole). */
  extraOpts: string[];
  compression: DumpCompression;
}

/** How zstd ended, as the run's failure in one line (a missing binary says what to do), or undefined when it succeeded. */
/** One database, dumped with pg_dump in custom format to stdout (through zstd with POSTGRES_COMPRESSION=zstd). */
export class PostgresSource implements BackupSource {
  readonly kind = 'postgres';
  readonly fileName: string;

  readonly name: string;
  private readonly server: PgServer;
  private readonly settings: DumpSettings;
  private readonly log: Logger;

  constructor(server: PgServer, name: string, settings: DumpSettings, log: Logger) {
    this.server = server;
    this.name = name;
    this.settings = settings;
    this.log = log;
    this.fileName = dumpFileName(name, settings.compression.method === 'zstd');
  }

  async open(): Promise<Production> {
    const { server, name } = this;
    // One snapshot for the dump and the row counts: the counts then describe exactly what was dumped.
    const session = await PsqlSession.open(server.client, server.conn, name);
    let snapshot: string;
    try {
      await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;');
      snapshot = (await session.query('SELECT pg_export_snapshot();'))[0]?.[0] ?? '';
    } catch (error) {
      await session.close();
      throw error;
    }
    const { compression, extraOpts } = this.settings;
    const args = ['--format=custom', '--no-password', `--snapshot=${snapshot}`, ...compressArgs(compression), ...extraOpts];
    this.log.debug({ database: name, args }, 'starting pg_dump');
    const dump = execa(join(server.client.binDir, 'pg_dump'), args, {
      env: libpqEnv(server.conn, name),
      stdout: 'pipe',
      buffer: { stdout: false },
      encoding: 'buffer',
    });
    const dumpFailure = dump.then(
      () => undefined,
      (error: { stderr?: Uint8Array | string; signal?: string }) => new RunError(`pg_dump of database ${name} failed: ${toolFailure(error)}`),
    );
    const zstd = compression.method === 'zstd' ? compressing(dump.stdout, compression.level) : undefined;
    // zstd holds the pipe now: were this process to keep its end open too, a dead zstd would leave pg_dump blocked instead of failing.
    if (zstd !== undefined) dump.stdout.destroy();
    const counting = Promise.all([session.query(ROW_COUNTS_SQL), session.query(LARGE_OBJECTS_SQL)]);
    let counts: TableCount[] = [];
    let largeObjects = 0;
    const done = (async () => {
      try {
        // When zstd dies, pg_dump dies of SIGPIPE: zstd's error is the one that says why.
        const zstdFailure = zstd === undefined ? undefined : await zstdProblem(zstd, `the dump of database ${name}`, 'or set POSTGRES_COMPRESSION=gzip');
        const failure = zstdFailure ?? (await dumpFailure);
        if (failure !== undefined) throw failure;
        const [rows, lo] = await counting;
        counts = toCounts(rows);
        largeObjects = Number(lo[0]?.[0] ?? 0);
      } finally {
        await session.close();
      }
    })();
    counting.catch(() => dump.kill());
    return {
      stream: zstd?.stdout ?? dump.stdout,
      done,
      abort: () => {
        dump.kill();
        zstd?.kill();
        session.kill();
      },
      describe: async (read) => {
        const stored = await read();
        const contents = await readToc(server.client, this.fileName, zstd === undefined ? stored : decompressing(stored));
        return {
          kind: 'postgres',
          format: 'custom',
          compression: compressionLabel(compression),
          fileCompression: zstd === undefined ? 'none' : 'zstd',
          tableCount: contents.tables,
          rowCounts: countsInDump(counts, contents),
          largeObjects: contents.hasLargeObjects ? largeObjects : 0,
        };
      },
    };
  }
}
