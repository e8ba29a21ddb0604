import { describe, expect, it } from 'vitest';
import { parseDatabaseProperties } from '../src/kinds/postgres/database-properties.ts';

/** The database's own properties are read from pg_restore output as data: only exact shapes are taken. */
describe('parseDatabaseProperties', () => {
  const OUTPUT = `--
-- Name: app; Type: DATABASE; Schema: -; Owner: postgres
--
\\restrict KEY
CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C';
ALTER DATABASE app OWNER TO postgres;
\\connect app
COMMENT ON DATABASE app IS 'the app''s db, 100% real';
ALTER DATABASE app SET work_mem TO '7MB';
ALTER DATABASE app SET search_path TO 'public', 'My Schema';
ALTER ROLE "Role One" IN DATABASE app SET statement_timeout TO '5s';
CREATE TABLE public.t (x integer);
`;

  it("takes the encoding and locale, settings, per-role settings and the comment, rebuilt around the restored database's name", () => {
    const props = parseDatabaseProperties(OUTPUT);
    expect(props.create).toEqual([
      ['ENCODING', "'LATIN1'"],
      ['LOCALE_PROVIDER', 'libc'],
      ['LOCALE', "'C'"],
    ]);
    expect(props.owner).toBe('ALTER DATABASE %I OWNER TO postgres');
    expect(props.statements).toEqual([
      "COMMENT ON DATABASE %I IS 'the app''s db, 100%% real'",
      "ALTER DATABASE %I SET work_mem TO '7MB'",
      "ALTER DATABASE %I SET search_path TO 'public', 'My Schema'",
      `ALTER ROLE "Role One" IN DATABASE %I SET statement_timeout TO '5s'`,
    ]);
  });

  it('ignores anything of another shape: a second statement after a literal, a meta-command, other objects, unknown CREATE DATABASE keys', () => {
    const hostile = [
      "ALTER DATABASE app SET work_mem TO '7MB'; DROP TABLE users;",
      "ALTER DATABASE app SET work_mem TO '7MB' \\! id",
      "COMMENT ON DATABASE app IS 'x'; COPY t TO PROGRAM 'id';",
      "ALTER DATABASE other RENAME TO app;",
      "ALTER ROLE x SET search_path TO 'evil';",
      "CREATE DATABASE app WITH TEMPLATE = template0 OWNER = evil ENCODING = 'UTF8';",
      "\\! touch /tmp/pwned",
    ].join('\n');
    const props = parseDatabaseProperties(hostile);
    expect(props.statements).toEqual([]);
    expect(props.create).toEqual([['ENCODING', "'UTF8'"]]);
  });
});
