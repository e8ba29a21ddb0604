import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseGlobals } from '../src/kinds/globals/sql.ts';

/** What pg_dumpall 15.18 --globals-only wrote for roles with odd names, comments, settings and grants. */
const REAL = readFileSync(join(import.meta.dirname, 'fixtures/globals-pg15.sql'), 'utf8');
const KEY = /\\restrict (\S+)/.exec(REAL)![1]!;

/** The real file with `line` inserted just before the \unrestrict line. */
const withLine = (line: string) => REAL.replace(`\\unrestrict ${KEY}`, `${line}\n\\unrestrict ${KEY}`);

describe('globals.sql is read as data, never as a psql script', () => {
  it("accepts pg_dumpall's own output: roles (quoted names too), comments with E'' strings, settings, memberships, parameter grants", () => {
    const parsed = parseGlobals(REAL);
    expect(parsed.roles).toEqual(['app_owner', 'app_reader', 'postgres', 'we ird"q']);
    expect(parsed.tablespaces).toEqual([]);
    expect(parsed.statements.map((s) => s.sql.split(' ').slice(0, 2).join(' '))).toContain('GRANT SET');
    expect(parsed.statements.find((s) => s.sql.startsWith('COMMENT'))?.sql).toBe(String.raw`COMMENT ON ROLE app_owner IS E'it''s the owner \\ ok'`);
    expect(parsed.statements.filter((s) => s.role === 'we ird"q')).toHaveLength(2);
  });

  it('accepts files of older clients without \\restrict, and tablespaces', () => {
    const old = `SET default_transaction_read_only = off;\nCREATE ROLE a;\nALTER ROLE a WITH LOGIN CONNECTION LIMIT -1;\nCREATE TABLESPACE "Fast" OWNER a LOCATION '/srv/fast';\nGRANT CREATE ON TABLESPACE "Fast" TO a;\nCOMMENT ON TABLESPACE "Fast" IS 'ssd';\n`;
    expect(parseGlobals(old)).toMatchObject({ roles: ['a'], tablespaces: ['Fast'] });
  });

  // Every psql meta-command that runs something, reads or writes a file, or builds commands.
  const metaCommands = [
    '\\! touch /tmp/pwned',
    '\\o |touch /tmp/pwned',
    "\\copy (SELECT 1) TO PROGRAM 'touch /tmp/pwned'",
    '\\setenv PAGER "touch /tmp/pwned"',
    '\\i /etc/passwd',
    '\\ir ../../x.sql',
    "SELECT 'touch /tmp/pwned' \\gexec",
    "SELECT 'x' AS y \\gset",
    '\\connect postgres',
    '\\unrestrict other-key',
    `\\restrict ${KEY}`,
    'CREATE ROLE z; \\! id',
  ];
  for (const line of metaCommands) {
    it(`refuses a file with ${line.split(' ')[0]} … in one line naming the line`, () => {
      expect(() => parseGlobals(withLine(line))).toThrow(/^line \d+: .*; the file is refused and nothing in it was run$/);
    });
  }

  it('refuses SQL that pg_dumpall --globals-only never writes', () => {
    for (const sql of [
      "COPY (SELECT 1) TO PROGRAM 'id';",
      'DO $$ BEGIN PERFORM 1; END $$;',
      'SELECT pg_read_file($x$/etc/passwd$x$);',
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;',
      'DROP DATABASE app;',
      'GRANT ALL ON SCHEMA public TO app_owner;',
      "SET standard_conforming_strings = off;",
      'SET session_authorization = app_owner;',
      "CREATE ROLE x; COPY t FROM PROGRAM 'id';",
      "CREATE ROLE U&\"x\";",
      'CREATE ROLE x',
    ]) {
      expect(() => parseGlobals(withLine(sql)), sql).toThrow(/the file is refused/);
    }
  });

  it('splits only where the server does: a ; or a backslash inside a string or a quoted name stays in the statement', () => {
    const tricky = String.raw`COMMENT ON ROLE "a;b" IS E'\'; DROP DATABASE app; --';` + '\n' + "COMMENT ON ROLE x IS 'a\\';\n";
    const parsed = parseGlobals(tricky);
    expect(parsed.statements).toHaveLength(2);
    // With standard_conforming_strings on, 'a\' is a whole string: the second statement ends at its own ';'.
    expect(parsed.statements[1]!.sql).toBe("COMMENT ON ROLE x IS 'a\\'");
  });

  it('property: any role name pg_dumpall could quote round-trips, and nothing outside the quotes is ever smuggled in', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes('\0')), fc.string({ maxLength: 30 }), (name, comment) => {
        const ident = `"${name.replaceAll('"', '""')}"`;
        const literal = comment.includes('\\') ? `E'${comment.replaceAll('\\', '\\\\').replaceAll("'", "''")}'` : `'${comment.replaceAll("'", "''")}'`;
        const parsed = parseGlobals(`CREATE ROLE ${ident};\nCOMMENT ON ROLE ${ident} IS ${literal};\n`);
        expect(parsed.roles).toEqual([name]);
        expect(parsed.statements).toHaveLength(2);
      }),
    );
  });
});
