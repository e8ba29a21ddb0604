import { join } from 'node:path';
import { execa } from 'execa';
import { RunError } from '../../errors.ts';
import { pgError, query } from '../../pg/psql.ts';
import type { PgServer } from '../../pg/server.ts';

/**
 * What a custom-format dump says about the database itself (pg_dump keeps it even without --create):
 * its encoding and locale, its comment, and its ALTER DATABASE ... SET / ALTER ROLE ... IN DATABASE
 * ... SET settings. Read from `pg_restore --create --schema-only` as data: only lines of exactly these
 * shapes are taken, each rebuilt around the database being restored, so nothing else in the dump's text
 * ever runs this way (what the dump holds for its objects, pg_restore runs as always).
 */
export interface DatabaseProperties {
  /** `KEY value` pairs for CREATE DATABASE (ENCODING, LOCALE_PROVIDER, LOCALE, LC_COLLATE ...). */
  create: [string, string][];
  /** Statements for the restored database, as format() templates whose %I is its name. */
  statements: string[];
  /** The owner, as an ALTER DATABASE template (skipped with --no-owner; an existing database's owner wins). */
  owner?: string;
}

const IDENT = `(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const LITERAL = `'(?:[^']|'')*'`;
const GUC = `[A-Za-z_][A-Za-z0-9_.]*`;
const CREATE_KEYS = new Set(['ENCODING', 'LOCALE_PROVIDER', 'LOCALE', 'LC_COLLATE', 'LC_CTYPE', 'ICU_LOCALE', 'ICU_RULES', 'BUILTIN_LOCALE']);

const CREATE = new RegExp(`^CREATE DATABASE ${IDENT} WITH (.*);$`);
const SET_DB = new RegExp(`^ALTER DATABASE ${IDENT} SET (${GUC}) TO (${LITERAL}(?:, ${LITERAL})*);$`);
const SET_ROLE = new RegExp(`^ALTER ROLE (${IDENT}) IN DATABASE ${IDENT} SET (${GUC}) TO (${LITERAL}(?:, ${LITERAL})*);$`);
const COMMENT = new RegExp(`^COMMENT ON DATABASE ${IDENT} IS (${LITERAL});$`);
const OWNER = new RegExp(`^ALTER DATABASE ${IDENT} OWNER TO (${IDENT});$`);
const PAIR = new RegExp(`([A-Z_]+) = (${LITERAL}|[A-Za-z0-9_]+)`, 'g');

/** Pure: the properties in pg_restore --create --schema-only output. */
export function parseDatabaseProperties(sql: string): DatabaseProperties {
  const props: DatabaseProperties = { create: [], statements: [] };
  // % in a template is format()'s; the literals and names are escaped for it.
  const escape = (text: string) => text.replaceAll('%', '%%');
  for (const line of sql.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = CREATE.exec(line)) !== null) {
      for (const [, key, value] of m[1]!.matchAll(PAIR)) if (CREATE_KEYS.has(key!)) props.create.push([key!, value!]);
    } else if ((m = SET_DB.exec(line)) !== null) {
      props.statements.push(`ALTER DATABASE %I SET ${escape(m[1]!)} TO ${escape(m[2]!)}`);
    } else if ((m = SET_ROLE.exec(line)) !== null) {
      props.statements.push(`ALTER ROLE ${escape(m[1]!)} IN DATABASE %I SET ${escape(m[2]!)} TO ${escape(m[3]!)}`);
    } else if ((m = OWNER.exec(line)) !== null) {
      props.owner = `ALTER DATABASE %I OWNER TO ${escape(m[1]!)}`;
    } else if ((m = COMMENT.exec(line)) !== null) {
      props.statements.push(`COMMENT ON DATABASE %I IS ${escape(m[1]!)}`);
    }
  }
  return props;
}

export async function readDatabaseProperties(server: PgServer, dumpPath: string): Promise<DatabaseProperties> {
  const result = await execa(join(server.client.binDir, 'pg_restore'), ['--create', '--schema-only', '--file=-', dumpPath], { reject: false });
  if (result.exitCode !== 0) throw new RunError(`cannot read the database properties of ${dumpPath}: ${pgError(result.stderr)}`);
  return parseDatabaseProperties(result.stdout);
}

/**
 * Creates `name` with the dump's encoding and locale; when this server cannot (a locale it lacks, an
 * older major), with its defaults instead. Returns what was not carried over, if anything.
 */
export async function createLike(server: PgServer, admin: string, name: string, props: DatabaseProperties): Promise<string | undefined> {
  const plain = `CREATE DATABASE :"name" TEMPLATE template0;`;
  if (props.create.length === 0) {
    await query(server.client, server.conn, admin, plain, { name });
    return undefined;
  }
  const options = props.create.map(([key, value]) => `${key} ${value}`).join(' ');
  try {
    await query(server.client, server.conn, admin, `CREATE DATABASE :"name" TEMPLATE template0 ${options};`, { name });
    return undefined;
  } catch (error) {
    await query(server.client, server.conn, admin, plain, { name });
    return `encoding and locale (${options}: ${(error as Error).message.replace(/^.*failed: /, '')}; the server's defaults were used)`;
  }
}

/** Applies the dump's owner, settings and comment to `database` (to become `shownAs`): how many it tried, and those this server refused. */
export async function applyDatabaseProperties(
  server: PgServer,
  admin: string,
  database: string,
  props: DatabaseProperties,
  shownAs: string,
  withOwner: boolean,
): Promise<{ tried: number; refused: string[] }> {
  const refused: string[] = [];
  const templates = [...(withOwner && props.owner !== undefined ? [props.owner] : []), ...props.statements];
  for (const template of templates) {
    // The statement is built by the server (format with %I), from a template of checked pieces.
    await query(server.client, server.conn, admin, `SELECT format(:'template', :'database') \\gexec`, { template, database }).catch((error: Error) => {
      const why = error.message.replace(/^.*failed: /, '').replace(/^psql:[^:]*:\d+: (ERROR: +)?/, '');
      refused.push(`${template.replace('%I', shownAs).replaceAll('%%', '%')} (${why})`);
    });
  }
  return { tried: templates.length, refused };
}
