import { z } from 'zod';

/** A documented environment variable: its schema, example, and whether it may hold a secret. */
export interface EnvVar {
  schema: z.ZodType;
  description: string;
  example: string;
  /** Secrets also accept `<NAME>_FILE` and are masked everywhere. */
  secret?: boolean;
  /** Also accepts `<NAME>_FILE` although it is not secret (compatible with docker-postgres-backup-local). */
  fileVariant?: boolean;
}

const optionalText = z
  .string()
  .trim()
  .transform((s) => (s === '' ? undefined : s))
  .optional();

/**
 * Comma-separated; a list without commas is split at spaces, as docker-postgres-backup-local does
 * (so a single name with a space needs a trailing comma: "my db,").
 */
const list = z
  .string()
  .optional()
  .transform((s) =>
    (s ?? '')
      .split((s ?? '').includes(',') ? ',' : /\s+/)
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  );

const absolutePath = (what: string) =>
  z.string().trim().refine((p) => p.startsWith('/'), { message: `${what} must be an absolute path` });

/** A media folder spec: `name:/path` or `/path` (name = the folder's basename). */
export const mediaSpec = z.string().transform((raw, ctx) => {
  const specs: { name: string; path: string }[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = item.indexOf(':');
    const name = colon > 0 ? item.slice(0, colon) : (item.replace(/\/+$/, '').split('/').pop() ?? '');
    const path = (colon > 0 ? item.slice(colon + 1) : item).replace(/(.)\/+$/, '$1');
    if (!path.startsWith('/')) {
      ctx.addIssue({ code: 'custom', message: `"${item}" is not an absolute path` });
    } else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${item}" needs a name of letters, digits, '.', '_' or '-' (write it as name:/path)`,
      });
    } else if (specs.some((s) => s.name === name)) {
      ctx.addIssue({ code: 'custom', message: `the name "${name}" is used twice (write one as othername:/path)` });
    } else {
      specs.push({ name, path });
    }
  }
  return specs;
});

/**
 * Every environment variable the tool reads. Names follow prodrigestivill/docker-postgres-backup-local
 * where the concept is the same, so switching images needs no other change.
 */
export const ENV = {
  POSTGRES_HOST: {
    schema: optionalText,
    description: 'PostgreSQL host name or socket directory. Required when POSTGRES_DB is set.',
    example: 'db',
  },
  POSTGRES_PORT: {
    schema: z.coerce
      .number({ message: 'expected a whole number from 1 to 65535' })
      .int('expected a whole number from 1 to 65535')
      .min(1, 'expected a whole number from 1 to 65535')
      .max(65535, 'expected a whole number from 1 to 65535')
      .default(5432),
    description: 'PostgreSQL port.',
    example: '5432',
  },
  POSTGRES_USER: {
    schema: optionalText,
    description: 'PostgreSQL user. Required when POSTGRES_DB is set; a superuser or the owner of each database.',
    example: 'postgres',
    fileVariant: true,
  },
  POSTGRES_PASSWORD: {
    schema: z.string().optional(),
    description: 'PostgreSQL password. Reaches pg_dump only through its environment. Optional (trust or .pgpass).',
    example: 'change-me',
    secret: true,
  },
  POSTGRES_DB: {
    schema: list,
    description: 'Databases to back up, comma-separated: one dump per database. Unset: no database backup.',
    example: 'app,analytics',
    fileVariant: true,
  },
  POSTGRES_EXTRA_OPTS: {
    schema: z.string().optional().default(''),
    description:
      'Extra pg_dump arguments, such as -Z 9 or --exclude-table-data=audit_log. The format (-F) and output (-f) are set by the tool.',
    example: '-Z 6 --exclude-table-data=public.sessions',
  },
  POSTGRES_MAINTENANCE_DB: {
    schema: z.string().trim().min(1, 'must not be empty').default('postgres'),
    description: 'Database to connect to for server-wide work (version, creating and renaming databases on restore).',
    example: 'postgres',
  },
  PG_BIN_DIR: {
    schema: absolutePath('PG_BIN_DIR').optional(),
    description:
      'Folder holding pg_dump, pg_restore and psql. Unset: every /usr/lib/postgresql/<major>/bin and PATH are searched and the client of the server\'s major is used.',
    example: '/usr/lib/postgresql/17/bin',
  },
  MEDIA_PATHS: {
    schema: mediaSpec.optional().transform((v) => v ?? []),
    description: 'Folders to archive, comma-separated, each name:/path or /path (name = basename).',
    example: 'uploads:/data/uploads,/data/site',
  },
  MEDIA_EXCLUDE: {
    schema: z
      .string()
      .optional()
      .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean)),
    description: 'Glob patterns left out of every tarball, comma-separated (GNU tar --exclude syntax).',
    example: '*.tmp,cache/*',
  },
  MEDIA_COMPRESSION: {
    schema: z.enum(['gzip', 'zstd'], { message: 'expected gzip or zstd' }).default('gzip'),
    description: 'Compression of media tarballs: gzip (.tar.gz) or zstd (.tar.zst).',
    example: 'zstd',
  },
  BACKUP_DIR: {
    schema: absolutePath('BACKUP_DIR').default('/backups'),
    description: 'The backups volume.',
    example: '/backups',
  },
  BACKUP_LABEL: {
    schema: optionalText,
    description: 'Free text kept in the manifest and, made file-name safe, in the run id (a git tag or commit).',
    example: 'v1.4.2',
  },
  LOG_LEVEL: {
    schema: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
        message: 'expected one of trace, debug, info, warn, error, fatal, silent',
      })
      .default('info'),
    description: 'Log level.',
    example: 'debug',
  },
  LOG_FORMAT: {
    schema: z.enum(['json', 'pretty'], { message: 'expected json or pretty' }).default('json'),
    description: 'json: one JSON object per line (for log collectors); pretty: human-readable.',
    example: 'pretty',
  },
} satisfies Record<string, EnvVar>;

export type EnvName = keyof typeof ENV;
