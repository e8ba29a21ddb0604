import { isIP } from 'node:net';
import bytes from 'bytes';
import { Cron } from 'croner';
import ms from 'ms';
import { z } from 'zod';
import { MEDIA_NAME, TIERS } from '../naming.ts';
import type { DumpCompression } from './config.ts';

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

/** A size such as 16MiB, 64MB, 1GiB or a plain number of bytes (1024-based units). */
const size = (min: number, max: number) =>
  z.string().trim().transform((raw, ctx) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : bytes.parse(raw.replace(/i(?=b$)/i, ''));
    if (n === null || !Number.isFinite(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected a size from ${bytes.format(min)} to ${bytes.format(max)}, such as 16MiB` });
      return z.NEVER;
    }
    return n;
  });

const wholeNumber = (min: number, max: number) =>
  z.coerce
    .number({ message: `expected a whole number from ${min} to ${max}` })
    .int(`expected a whole number from ${min} to ${max}`)
    .min(min, `expected a whole number from ${min} to ${max}`)
    .max(max, `expected a whole number from ${min} to ${max}`);

/** A duration such as 90s, 26h, 2d (the ms library), at least `min` milliseconds. */
const duration = (min: number) =>
  z
    .string()
    .trim()
    .transform((raw, ctx) => {
      const value = ms(raw as ms.StringValue);
      if (typeof value !== 'number' || !(value >= min)) {
        ctx.addIssue({ code: 'custom', message: `expected a duration of at least ${ms(min, { long: true })}, such as 90s, 26h or 2d` });
        return z.NEVER;
      }
      return value;
    });

const httpUrl = optionalText.refine((u) => u === undefined || /^https?:$/.test(URL.parse(u)?.protocol ?? ''), {
  message: 'expected an http(s) URL such as https://hooks.example.com/backup',
});

/** A cron expression croner accepts (5 or 6 fields, or a nickname such as @daily). */
const cronExpression = z
  .string()
  .trim()
  .refine(
    (pattern) => {
      try {
        new Cron(pattern, { paused: true }).stop();
        return true;
      } catch {
        return false;
      }
    },
    { message: 'expected a cron expression: 5 fields, 6 with seconds first, or @hourly, @daily, @weekly, @monthly' },
  );

const port = wholeNumber(1, 65535);

/** A share such as 50% (or 50): returned as a fraction, 0.5. */
const percent = z
  .string()
  .trim()
  .transform((raw, ctx) => {
    const n = /^\d+(\.\d+)?%?$/.test(raw) ? Number(raw.replace('%', '')) : Number.NaN;
    if (!(n >= 0 && n <= 100)) {
      ctx.addIssue({ code: 'custom', message: 'expected a percentage from 0% to 100%, such as 50%' });
      return z.NEVER;
    }
    return n / 100;
  });

/** A retention count: 0 keeps none of that tier, -1 keeps them forever. */
const keep = (fallback: number) => wholeNumber(-1, 100_000).default(fallback);
const keepOverride = wholeNumber(-1, 100_000).optional();

/** true/false/yes/no/1/0 in any case (docker-postgres-backup-local's README writes TRUE). */
const bool = z
  .string()
  .transform((v) => v.trim().toLowerCase())
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' }))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'GLACIER_IR',
  'DEEP_ARCHIVE',
] as const;
const TRANSITION_CLASSES = ['STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'GLACIER_IR', 'DEEP_ARCHIVE'] as const;

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** A media folder spec: `name:/path` or `/path` (name = the folder's basename). */
export const mediaSpec = z.string().transform((raw, ctx) => {
  const specs: { name: string; path: string }[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = item.indexOf(':');
    const name = colon > 0 ? item.slice(0, colon) : (item.replace(/\/+$/, '').split('/').pop() ?? '');
    const path = (colon > 0 ? item.slice(colon + 1) : item).replace(/(.)\/+$/, '$1');
    if (!path.startsWith('/')) {
      ctx.addIssue({ code: 'custom', message: `"${item}" is not an absolute path` });
    } else if (!MEDIA_NAME.test(name)) {
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
    schema: port.default(5432),
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
    description: 'Databases to back up, comma-separated: one dump per database. * : every database the user can connect to (templates aside), discovered at each run, with the roles. Unset: no database backup.',
    example: 'app,analytics',
    fileVariant: true,
  },
  POSTGRES_CLUSTER: {
    schema: bool.default(false),
    description: "The same as POSTGRES_DB=* (docker-postgres-backup-local's name).",
    example: 'true',
  },
  POSTGRES_EXCLUDE_DB: {
    schema: list,
    description: 'With POSTGRES_DB=*: databases left out, comma-separated.',
    example: 'scratch,old_app',
  },
  POSTGRES_GLOBALS: {
    schema: bool.default(false),
    description:
      'Also dump roles and tablespaces (pg_dumpall --globals-only) into each run, so a restore onto a new, empty server recreates them before the databases. Needs a superuser.',
    example: 'true',
  },
  POSTGRES_EXTRA_OPTS: {
    schema: z.string().optional().default(''),
    description:
      'Extra pg_dump arguments, such as -Z 9 or --exclude-table-data=audit_log. The format (-F) and output (-f) are set by the tool.',
    example: '-Z 6 --exclude-table-data=public.sessions',
  },
  POSTGRES_COMPRESSION: {
    schema: z
      .string()
      .trim()
      .toLowerCase()
      .default('zstd:3')
      .transform((s, ctx): DumpCompression => {
        const m = /^(zstd|gzip|none)(?::(\d+))?$/.exec(s);
        const level = m?.[2] === undefined ? undefined : Number(m[2]);
        if (m?.[1] === 'zstd' && (level === undefined || (level >= 1 && level <= 19))) return { method: 'zstd', level: level ?? 3 };
        if (m?.[1] === 'gzip' && (level === undefined || level <= 9)) return { method: 'gzip', level };
        if (m?.[1] === 'none' && level === undefined) return { method: 'none' };
        ctx.addIssue({ code: 'custom', message: 'expected zstd[:1-19], gzip[:0-9] or none' });
        return z.NEVER;
      }),
    description:
      "Compression of database dumps: zstd[:level] (default zstd:3; pg_dump's output compressed by zstd on every core, <db>.dump.zst), gzip[:level] (pg_dump's own, <db>.dump) or none. A -Z or --compress in POSTGRES_EXTRA_OPTS wins.",
    example: 'zstd:6',
  },
  POSTGRES_PARALLEL: {
    schema: wholeNumber(1, 64).optional(),
    description:
      'How many databases (and media folders) a run dumps at once. Unset: half the CPUs (at least 1), since each dump already keeps pg_dump, the server and zstd busy.',
    example: '2',
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
  VERIFY_POSTGRES_HOST: {
    schema: optionalText,
    description:
      'Server for restore drills (verify --restore, VERIFY_SCHEDULE). Unset: the backed-up server itself, into a scratch database.',
    example: 'verify-db',
  },
  VERIFY_POSTGRES_PORT: {
    schema: port.optional(),
    description: 'Port of VERIFY_POSTGRES_HOST. Default: 5432.',
    example: '5432',
  },
  VERIFY_POSTGRES_USER: {
    schema: optionalText,
    description: 'User on VERIFY_POSTGRES_HOST; it must be allowed to create databases. Default: POSTGRES_USER.',
    example: 'postgres',
    fileVariant: true,
  },
  VERIFY_POSTGRES_PASSWORD: {
    schema: z.string().optional(),
    description: 'Password on VERIFY_POSTGRES_HOST (POSTGRES_PASSWORD is never sent to another server).',
    example: 'change-me',
    secret: true,
  },
  VERIFY_SQL: {
    schema: optionalText,
    description: 'A query a drill runs in each restored database; its first column must be true, or the drill fails.',
    example: "SELECT count(*) > 0 FROM users",
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
  RESTORE_SAFETY: {
    schema: z.enum(['dump', 'keep', 'none'], { message: 'expected dump, keep or none' }).default('dump'),
    description:
      "What a restore keeps of what it replaces. dump: a complete dump into pre-restore/ first; keep: the replaced database itself, renamed <db>__pre_restore_<run-id> (instant rollback with restore --rollback; costs server disk); none: nothing (restore --no-safety-backup says the same).",
    example: 'keep',
  },
  BACKUP_KEEP_PRE_RESTORE: {
    schema: wholeNumber(0, 100_000).default(3),
    description: 'How many safety backups (pre-restore/, and databases kept by RESTORE_SAFETY=keep, per database) are kept, newest first.',
    example: '3',
  },
  TZ: {
    schema: z
      .string()
      .trim()
      .optional()
      .refine((tz) => tz === undefined || tz === '' || validTimeZone(tz), { message: 'expected an IANA time zone such as Europe/Berlin or UTC' }),
    description: 'Time zone of the calendar that decides tiers (first run of a day, ISO week, month, year). Unset: UTC.',
    example: 'Europe/Berlin',
  },
  BACKUP_KEEP_DAYS: {
    schema: keep(7),
    description: 'How many days daily runs are kept (age measured from the newest successful run). -1: forever.',
    example: '7',
  },
  BACKUP_KEEP_WEEKS: {
    schema: keep(4),
    description: 'How many weeks weekly runs (the first of each ISO week) are kept. -1: forever.',
    example: '4',
  },
  BACKUP_KEEP_MONTHS: {
    schema: keep(6),
    description: 'How many months monthly runs (the first of each month) are kept. -1: forever.',
    example: '6',
  },
  BACKUP_KEEP_YEARS: {
    schema: keep(0),
    description: 'How many years yearly runs (the first of each year) are kept; 0 keeps them as long as monthly ones. -1: forever.',
    example: '-1',
  },
  BACKUP_KEEP_MINS: {
    schema: wholeNumber(1, 10_000_000).optional(),
    description:
      "docker-postgres-backup-local's meaning: every run younger than this many minutes (before the newest) is kept; older daily runs one a day (the newest of each day) for BACKUP_KEEP_DAYS.",
    example: '1440',
  },

  BACKUP_KEEP_LAST: {
    schema: wholeNumber(1, 100_000).optional(),
    description: 'The N newest complete runs are always kept, whatever their tier or age (beside the tier windows).',
    example: '10',
  },
  S3_BUCKET: {
    schema: optionalText.refine((b) => b === undefined || /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b), {
      message: 'expected a bucket name: 3 to 63 lowercase letters, digits, dots or hyphens',
    }),
    description: 'Turns offsite copies on: every run is also streamed to this bucket.',
    example: 'my-backups',
  },
  S3_PREFIX: {
    schema: z
      .string()
      .optional()
      .transform((p) => (p ?? '').replace(/^\/+|\/+$/g, ''))
      .refine((p) => p === '' || !p.split('/').some((part) => part === '' || part === '.' || part === '..'), {
        message: "expected folder names separated by '/', without empty, '.' or '..' parts",
      }),
    description: 'Key prefix in the bucket, so one bucket can hold several apps. Keys are <prefix>/<tier>/<run>/<file>.',
    example: 'prod/app',
  },
  S3_REGION: {
    schema: optionalText,
    description: "The bucket's region. Unset: AWS_REGION, or us-east-1 (most S3-compatible stores accept any).",
    example: 'eu-central-1',
  },
  S3_ENDPOINT: {
    schema: optionalText.refine((u) => u === undefined || /^https?:$/.test(URL.parse(u)?.protocol ?? ''), {
      message: 'expected an http(s) URL such as https://s3.example.com',
    }),
    description: 'Endpoint of an S3-compatible store (MinIO, R2, B2, Ceph, Wasabi). Unset: AWS.',
    example: 'http://minio:9000',
  },
  S3_FORCE_PATH_STYLE: {
    schema: bool.optional(),
    description: 'Address the bucket as <endpoint>/<bucket> instead of <bucket>.<endpoint>. Default: true when S3_ENDPOINT is set (MinIO needs it).',
    example: 'true',
  },
  AWS_ACCESS_KEY_ID: {
    schema: optionalText,
    description: "Access key. Unset (with AWS_SECRET_ACCESS_KEY): the SDK's usual chain (web identity, ECS or instance role, ~/.aws).",
    example: 'AKIA...',
    secret: true,
  },
  AWS_SECRET_ACCESS_KEY: {
    schema: optionalText,
    description: 'Secret key belonging to AWS_ACCESS_KEY_ID.',
    example: 'wJalr...',
    secret: true,
  },
  AWS_SESSION_TOKEN: {
    schema: optionalText,
    description: 'Session token, for temporary credentials.',
    example: 'IQoJb3JpZ2lu...',
    secret: true,
  },
  S3_STORAGE_CLASS: {
    schema: z.enum(STORAGE_CLASSES, { message: `expected one of ${STORAGE_CLASSES.join(', ')}` }).optional(),
    description: "Storage class of uploaded artifacts (manifests stay STANDARD so listing stays cheap and instant). Unset: the bucket's default.",
    example: 'STANDARD_IA',
  },
  S3_SSE: {
    schema: z.enum(['AES256', 'aws:kms'], { message: 'expected AES256 or aws:kms' }).optional(),
    description: 'Server-side encryption of uploaded objects.',
    example: 'aws:kms',
  },
  S3_SSE_KMS_KEY_ID: {
    schema: optionalText,
    description: 'KMS key for S3_SSE=aws:kms. Unset: the aws/s3 managed key.',
    example: 'arn:aws:kms:eu-central-1:111122223333:key/abcd-...',
  },
  S3_PART_SIZE: {
    schema: size(5 * 1024 ** 2, 5 * 1024 ** 3).default(5 * 1024 ** 2),
    description:
      'Smallest multipart part size. Grown per artifact from the previous run\'s size so no upload needs more than S3_MAX_PARTS parts. Memory used: about part size x (S3_QUEUE_SIZE + 4).',
    example: '16MiB',
  },
  S3_QUEUE_SIZE: {
    schema: wholeNumber(1, 64).default(2),
    description: 'Parts uploaded in parallel.',
    example: '4',
  },
  S3_MAX_PARTS: {
    schema: wholeNumber(1, 10_000).default(10_000),
    description: 'Most parts the store allows in one upload (S3: 10000; some S3-compatible stores: 1000).',
    example: '1000',
  },
  S3_CHECKSUMS: {
    schema: z.enum(['auto', 'always', 'when-required'], { message: 'expected auto, always or when-required' }).default('auto'),
    description:
      "auto: the SDK's default request checksums on AWS, only required ones with S3_ENDPOINT (many S3-compatible stores mishandle aws-chunked bodies with trailing checksums). always / when-required force one.",
    example: 'always',
  },
  S3_MAX_ATTEMPTS: {
    schema: wholeNumber(1, 20).default(5),
    description: 'Attempts per S3 request; transient errors (5xx, throttling, resets) are retried with exponential backoff.',
    example: '5',
  },
  S3_TIMEOUT: {
    schema: duration(1000).default(60_000),
    description: 'How long one S3 request may stay silent before it is retried.',
    example: '30s',
  },
  SFTP_HOST: {
    schema: optionalText,
    description: 'Turns SFTP copies on: every run is also streamed to this SSH server (a NAS, a storage box), beside S3 if that is set too.',
    example: 'backup.example.com',
  },
  SFTP_PORT: { schema: port.default(22), description: 'Port of SFTP_HOST.', example: '23' },
  SFTP_USER: { schema: optionalText, description: 'User on SFTP_HOST.', example: 'u123456', fileVariant: true },
  SFTP_PASSWORD: { schema: optionalText, description: 'Password on SFTP_HOST (or SFTP_IDENTITY_FILE).', example: 'change-me', secret: true },
  SFTP_IDENTITY_FILE: { schema: optionalText, description: 'An OpenSSH private key file to log in with.', example: '/run/secrets/sftp_key' },
  SFTP_IDENTITY_PASSPHRASE: { schema: optionalText, description: 'Passphrase of SFTP_IDENTITY_FILE.', example: 'change-me', secret: true },
  SFTP_PATH: {
    schema: z.string().trim().default('.').refine((p) => !p.split('/').includes('..'), { message: 'expected a folder path without ..' }),
    description: 'Base folder on the server; runs go to <SFTP_PATH>/<tier>/<run-id>/. Relative paths start in the login folder.',
    example: 'backups/app',
  },
  SFTP_HOST_KEY: {
    schema: optionalText,
    description:
      "The server's public host key, as a known_hosts or .pub line (ssh-keyscan -t ed25519 HOST); a mismatch refuses before anything is sent. `any` accepts every key (trust on first use is not offered; logged as a warning).",
    example: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...',
  },
  SFTP_TIMEOUT: { schema: duration(1000).default(60_000), description: 'How long the SFTP connection may stay silent before the copy fails.', example: '30s' },
  SFTP_KEEP_DAYS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_DAYS on the SFTP server.', example: '30' },
  SFTP_KEEP_WEEKS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_WEEKS on the SFTP server.', example: '12' },
  SFTP_KEEP_MONTHS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_MONTHS on the SFTP server.', example: '24' },
  SFTP_KEEP_YEARS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_YEARS on the SFTP server.', example: '-1' },
  S3_KEEP_DAYS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_DAYS in the bucket.', example: '30' },
  S3_KEEP_WEEKS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_WEEKS in the bucket.', example: '12' },
  S3_KEEP_MONTHS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_MONTHS in the bucket.', example: '24' },
  S3_KEEP_YEARS: { schema: keepOverride, description: 'Overrides BACKUP_KEEP_YEARS in the bucket.', example: '-1' },
  S3_TRANSITION_DAYS: {
    schema: wholeNumber(0, 100_000).optional(),
    description: 'lifecycle: move artifacts of S3_TRANSITION_TIERS to S3_TRANSITION_CLASS this many days after upload.',
    example: '30',
  },
  S3_TRANSITION_CLASS: {
    schema: z.enum(TRANSITION_CLASSES, { message: `expected one of ${TRANSITION_CLASSES.join(', ')}` }).default('GLACIER'),
    description: 'lifecycle: the storage class artifacts move to after S3_TRANSITION_DAYS.',
    example: 'DEEP_ARCHIVE',
  },
  S3_TRANSITION_TIERS: {
    schema: z
      .string()
      .optional()
      .transform((s) => (s ?? 'monthly,yearly').split(',').map((x) => x.trim()).filter(Boolean))
      .refine((tiers) => tiers.every((t) => (TIERS as readonly string[]).includes(t)), { message: `expected tiers among ${TIERS.join(', ')}` }),
    description: 'lifecycle: which tier prefixes transition.',
    example: 'weekly,monthly,yearly',
  },
  S3_LIFECYCLE_MARGIN_DAYS: {
    schema: wholeNumber(0, 3650).default(7),
    description:
      'lifecycle: days added to each expiration, so the bucket expires a run only after prune (which counts from the newest run, not the clock) would have.',
    example: '7',
  },
  S3_ABORT_INCOMPLETE_DAYS: {
    schema: wholeNumber(1, 365).default(3),
    description: 'lifecycle: days after which the bucket aborts multipart uploads a crash left behind.',
    example: '3',
  },
  ENCRYPTION_RECIPIENTS: {
    schema: optionalText
      .transform((v) => (v ?? '').split('\n').filter((line) => !line.trim().startsWith('#')).join(' ').split(/[\s,]+/).filter(Boolean))
      .refine((keys) => keys.every((k) => /^age1[0-9a-z]{20,}$/.test(k)), { message: 'expected age public keys (age1…), separated by commas, spaces or lines' }),
    description:
      'age public keys every artifact is encrypted to, as it is streamed (files get .age). Only the matching identities can restore. Not with ENCRYPTION_PASSPHRASE.',
    example: 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p',
    fileVariant: true,
  },
  ENCRYPTION_PASSPHRASE: {
    schema: z.string().optional(),
    description: 'Encrypt every artifact with this passphrase (age scrypt), and decrypt with it. Not with ENCRYPTION_RECIPIENTS.',
    example: 'correct-horse-battery-staple',
    secret: true,
  },
  ENCRYPTION_IDENTITY_FILE: {
    schema: absolutePath('ENCRYPTION_IDENTITY_FILE').optional(),
    description: 'An age identity file (AGE-SECRET-KEY-1… lines) that restore, verify and drills decrypt with. Keep it off the backup host if you can.',
    example: '/run/secrets/age_identity',
  },
  BACKUP_SIGNING_KEY: {
    schema: z.string().optional(),
    description:
      'A secret of at least 32 characters (openssl rand -hex 32) that signs each manifest (manifest.json.sig); restore, verify and drills refuse runs whose signature is missing or wrong. One key per line: the first signs, all verify.',
    example: '3f1c…64 hex characters…',
    secret: true,
  },
  SCHEDULE: {
    schema: cronExpression.default('@daily'),
    description: 'When the daemon backs up: a cron expression in TZ (seconds field and nicknames allowed).',
    example: '0 3 * * *',
  },
  BACKUP_ON_START: {
    schema: bool.default(false),
    description: 'The daemon runs one backup as soon as it starts.',
    example: 'true',
  },
  VALIDATE_ON_START: {
    schema: bool.default(true),
    description:
      'The daemon checks at start that PostgreSQL and every remote target answer, and logs the result (as docker-postgres-backup-local does); a failure is a warning, the daemon keeps running.',
    example: 'false',
  },
  SHUTDOWN_TIMEOUT: {
    schema: duration(0).default(60_000),
    description: 'On SIGTERM or SIGINT, how long a running backup may take to finish before it is aborted cleanly.',
    example: '5m',
  },
  LOCK_WAIT: {
    schema: duration(0).default(600_000),
    description: 'How long a command waits for the volume lock another backup, restore or drill holds before it fails. A dead holder\'s lock is taken over after 10 s.',
    example: '30m',
  },
  HEALTHCHECK_MAX_AGE: {
    schema: duration(1000).optional(),
    description: 'healthcheck fails when the newest successful run is older. Default: two SCHEDULE intervals plus one hour.',
    example: '26h',
  },
  VERIFY_SCHEDULE: {
    schema: cronExpression.optional(),
    description: 'When the daemon runs a restore drill (verify --restore) on the newest run, in TZ. Unset: no drills.',
    example: '0 5 * * 0',
  },
  WAL_ARCHIVE: {
    schema: bool.default(false),
    description:
      'The daemon streams WAL with pg_receivewal over a replication connection (a physical replication slot) into BACKUP_DIR/wal/, and takes base backups on BASE_BACKUP_SCHEDULE: restore --pitr then recovers to any second. Needs a role with REPLICATION and a pg_hba.conf replication line.',
    example: 'true',
  },
  WAL_SLOT: {
    schema: z.string().trim().regex(/^[a-z0-9_]{1,63}$/, 'expected a slot name of 1 to 63 lower-case letters, digits and underscores').default('backup_sidecar'),
    description: 'The physical replication slot WAL streaming uses, created if missing: the server keeps WAL the sidecar has not received yet (backup-sidecar wal --drop-slot removes it).',
    example: 'backup_sidecar',
  },
  WAL_SYNCHRONOUS: {
    schema: bool.default(false),
    description: 'pg_receivewal --synchronous: flushes WAL as soon as it is received and reports it so (for synchronous_standby_names).',
    example: 'true',
  },
  WAL_PARTIAL_INTERVAL: {
    schema: duration(1000).default(60_000),
    description: 'With WAL_ARCHIVE and a remote target: how often the segment still being written is shipped too (<segment>.partial.zst), so an idle database leaves the remote copy at most this far behind.',
    example: '30s',
  },
  WAL_MAX_LAG: {
    schema: duration(1000).default(5 * 60_000),
    description: 'With WAL_ARCHIVE: healthcheck, /healthz and status report unhealthy once WAL streaming has been down this long, or is this far behind the server (the WAL since is not in the volume).',
    example: '15m',
  },
  PG_SERVER_BIN_DIR: {
    schema: absolutePath('PG_SERVER_BIN_DIR').optional(),
    description:
      'A PostgreSQL server (postgres, pg_ctl) of the same major as the backed-up one, for the PITR drill (verify --restore of a base backup run), which starts a throwaway server on the restored files. Unset: /usr/lib/postgresql/<major>/bin when it holds one (the image built with --build-arg PG_SERVER_MAJORS), else that drill reports "skipped: no server binary", never passed.',
    example: '/usr/lib/postgresql/17/bin',
  },
  BASE_BACKUP_SCHEDULE: {
    schema: cronExpression.default('@weekly'),
    description: 'With WAL_ARCHIVE: when the daemon takes a base backup (pg_basebackup, tar, zstd) into a run of kind basebackup, in TZ.',
    example: '0 4 * * 0',
  },
  HEALTHCHECK_REQUIRE_VERIFY: {
    schema: bool.default(false),
    description: 'healthcheck, /healthz and status report unhealthy when the last restore drill failed.',
    example: 'true',
  },
  HEALTHCHECK_REQUIRE_OFFSITE: {
    schema: bool.optional(),
    description: 'healthcheck, /healthz and status report unhealthy while the newest successful run is not in the offsite store. Default: true when S3_BUCKET is set.',
    example: 'false',
  },
  HEALTHCHECK_PORT: {
    schema: port.optional(),
    description: 'The daemon serves /healthz (200 or 503) and /metrics (Prometheus) on this port.',
    example: '8080',
  },
  HEALTHCHECK_BIND: {
    schema: optionalText.refine((a) => a === undefined || isIP(a) !== 0, { message: 'expected an IP address such as 127.0.0.1, 0.0.0.0 or ::' }),
    description: 'The address HEALTHCHECK_PORT listens on. Default: every interface (0.0.0.0 and ::); 127.0.0.1 keeps the page to this host.',
    example: '127.0.0.1',
  },
  STATUS_PASSWORD: {
    schema: optionalText,
    description: 'Basic auth (any user name, this password) for the status page / and /?format=json; /healthz and /metrics stay open for probes and scrapers. Usually STATUS_PASSWORD_FILE.',
    example: 'change-me',
    secret: true,
  },
  HISTORY_MAX: {
    schema: wholeNumber(10, 1_000_000).default(1000),
    description: 'Lines kept in BACKUP_DIR/.history.jsonl (one per backup job and drill, kept whatever retention removes), for the status page charts.',
    example: '5000',
  },
  SIZE_DROP_WARN: {
    schema: percent.default(0.5),
    description:
      'Flags a run whose artifact is smaller than this share of the same source in the previous run, or one of whose tables has fewer than this share of its rows. The last run before the drop is kept until `backup-sidecar ack <run-id>`. 0%: off.',
    example: '30%',
  },
  SIZE_DROP_MIN_ROWS: {
    schema: wholeNumber(0, 2 ** 53).default(100),
    description: 'SIZE_DROP_WARN compares the row count of tables that had at least this many rows (queues and session tables come and go).',
    example: '1000',
  },
  DISK_FREE_MIN: {
    schema: size(0, 2 ** 53).default(1024 ** 3),
    description: 'status warns when the volume has less free space.',
    example: '5GiB',
  },
  WEBHOOK_URL: {
    schema: httpUrl,
    description: 'Called (POST, JSON) after every backup run: status, run id, sizes, duration, error. Masked like a secret: such URLs often hold a token.',
    example: 'https://hc-ping.com/<uuid>',
    secret: true,
  },
  WEBHOOK_ERROR_URL: {
    schema: httpUrl,
    description: 'Called (POST, JSON) only after a failed run.',
    example: 'https://hooks.slack.com/services/...',
    secret: true,
  },
  WEBHOOK_FORMAT: {
    schema: z.enum(['json', 'slack', 'discord', 'ntfy', 'text'], { message: 'expected json, slack, discord, ntfy or text' }).default('json'),
    description: 'The body of every webhook: json (the full report), slack ({"text"}), discord ({"content"}), ntfy (text with title and priority headers) or text (one line).',
    example: 'slack',
  },
  HEALTHCHECKS_URL: {
    schema: httpUrl,
    description: 'A healthchecks.io (or compatible) check: pinged at <url>/start when a backup starts, <url> when it succeeds, <url>/fail with the reason otherwise.',
    example: 'https://hc-ping.com/<uuid>',
    secret: true,
  },
  WEBHOOK_PRE_BACKUP_URL: {
    schema: httpUrl,
    description: 'Called (POST, JSON, "status":"start") when a backup job starts (docker-postgres-backup-local\'s name).',
    example: 'https://hc-ping.com/<uuid>/start',
    secret: true,
  },
  WEBHOOK_POST_BACKUP_URL: {
    schema: httpUrl,
    description: 'Called (POST, JSON) after a backup job that fully succeeded (docker-postgres-backup-local\'s name).',
    example: 'https://hc-ping.com/<uuid>',
    secret: true,
  },
  BACKUP_PRE_COMMAND: {
    schema: optionalText,
    description: 'A shell command run before each backup (such as an app data export); its failure fails the run.',
    example: 'curl -fsS http://app:3000/export',
  },
  BACKUP_POST_COMMAND: {
    schema: optionalText,
    description: 'A shell command run after each backup, with BACKUP_STATUS (ok or failed) and BACKUP_RUN_DIR in its environment; its failure is reported.',
    example: '/scripts/notify.sh',
  },
  CLOCK_SKEW_MAX: {
    schema: duration(0).default(300_000),
    description:
      'A run dated later than now plus this (forged, or left by a clock that jumped) is suspicious: kept and reported, never the newest, never counted fresh by healthcheck.',
    example: '5m',
  },
  HOOK_ENV: {
    schema: list.refine((names) => names.every((n) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n)), { message: 'expected variable names separated by commas' }),
    description:
      'Secret variables BACKUP_PRE_COMMAND and BACKUP_POST_COMMAND may see (comma-separated names). Hooks get every other variable, but no secret unless named here.',
    example: 'POSTGRES_PASSWORD,WEBHOOK_URL',
  },
  BACKUP_FAKE_NOW: {
    schema: z.iso.datetime({ message: 'expected an ISO time such as 2026-01-31T02:00:00Z' }).optional(),
    description: 'For tests only: the clock starts at this time (and runs on), to simulate months of runs.',
    example: '2026-01-31T02:00:00Z',
  },
  LOG_PROGRESS_EVERY: {
    schema: duration(100).default(10_000),
    description: 'How often a long dump, upload, download, restore or drill logs its progress (bytes, rate, time elapsed). On a terminal with pretty logs, a live line instead.',
    example: '30s',
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
    schema: z.enum(['json', 'pretty'], { message: 'expected json or pretty' }).optional(),
    description: 'json: one JSON object per line (for log collectors); pretty: human-readable, one line per event. Unset: pretty when stderr is a terminal, json otherwise.',
    example: 'pretty',
  },
} satisfies Record<string, EnvVar>;

export type EnvName = keyof typeof ENV;
