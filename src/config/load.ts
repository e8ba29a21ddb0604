import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseCommandString } from 'execa';
import { z } from 'zod';
import { folderOverlap } from '../util/paths.ts';
import { ENV, type EnvName, type EnvVar } from './schema.ts';
import { MIN_KEY_LENGTH, keyFromPassphrase, type SigningKeys } from '../crypto/signing.ts';
import { peerVariables, resolveAliases, typoWarnings } from './aliases.ts';
import type { Config, RetentionPolicy, S3Config, SftpConfig } from './config.ts';

/** How one variable was set, for print-config. */
export interface Setting {
  name: EnvName;
  value: string | undefined;
  source: 'env' | 'file' | 'default';
  secret: boolean;
}

export interface LoadResult {
  config: Config | undefined;
  /** One line per problem: the variable, what is wrong, an example of a good value. */
  problems: string[];
  /** Likely typos: unknown variables with our prefixes, close to a known name. */
  warnings: string[];
  settings: Setting[];
}

type Env = Record<string, string | undefined>;

/** pg_dump options the tool sets itself; allowing them in POSTGRES_EXTRA_OPTS would break the run. */
const RESERVED_DUMP_OPTS = [
  ['-f', '--file'],
  ['-F', '--format'],
  ['-d', '--dbname'],
  ['-h', '--host'],
  ['-p', '--port'],
  ['-U', '--username'],
  ['-W', '--password'],
  ['-j', '--jobs'],
  ['--snapshot'],
] as const;

function example(name: EnvName): string {
  return `(example: ${name}=${ENV[name].example})`;
}

/** Reads `X` or `X_FILE` (Docker secrets); both set is a problem. */
function readRaw(env: Env, name: EnvName, spec: EnvVar, problems: string[]): Omit<Setting, 'name' | 'secret'> {
  const direct = env[name];
  const fileName = `${name}_FILE`;
  const filePath = spec.secret || spec.fileVariant ? env[fileName] : undefined;
  if (filePath !== undefined && filePath !== '') {
    if (direct !== undefined && direct !== '') {
      problems.push(`${name} and ${fileName} are both set: keep one of them`);
      return { value: undefined, source: 'env' };
    }
    try {
      // One trailing newline is what editors and `echo` leave in secret files; it is not part of the value.
      return { value: readFileSync(filePath, 'utf8').replace(/\r?\n$/, ''), source: 'file' };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push(`${fileName}="${filePath}": cannot read the file (${code}); mount the secret there or fix the path`);
      return { value: undefined, source: 'file' };
    }
  }
  return { value: direct, source: direct === undefined ? 'default' : 'env' };
}

/**
 * Parses the environment once. Never throws: problems come back as lines. `needSources: false` is for
 * commands that only read the volume (list, status, verify, ...): they work without POSTGRES_DB or
 * MEDIA_PATHS, so `docker run --rm -v backups:/backups IMAGE list` needs no other setting.
 */
export function loadConfig(given: Env = process.env, options: { needSources?: boolean; tty?: boolean } = {}): LoadResult {
  const problems: string[] = [];
  const settings: Setting[] = [];
  const values: Record<string, unknown> = {};
  const env = resolveAliases(given, problems);
  const peers = peerVariables(given);
  problems.push(...peers.problems);
  const warnings = [...peers.warnings, ...typoWarnings(given, Object.keys(ENV))];

  for (const [key, spec] of Object.entries(ENV) as [EnvName, EnvVar][]) {
    const raw = readRaw(env, key, spec, problems);
    settings.push({ name: key, secret: spec.secret === true, ...raw });
    const parsed = spec.schema.safeParse(raw.value);
    if (parsed.success) {
      values[key] = parsed.data;
    } else {
      for (const issue of parsed.error.issues) {
        const shown = spec.secret || raw.value === undefined ? '' : `="${raw.value}"`;
        problems.push(`${key}${shown}: ${issue.message} ${example(key)}`);
      }
    }
  }
  if (problems.length > 0) return { config: undefined, problems, settings, warnings };

  const v = values as Values;
  const all = v.POSTGRES_CLUSTER || (v.POSTGRES_DB.length === 1 && v.POSTGRES_DB[0] === '*');
  const databases = all ? [] : v.POSTGRES_DB;
  if (!all && databases.includes('*')) problems.push('POSTGRES_DB: * stands alone (every database); list names, or use POSTGRES_EXCLUDE_DB with *');
  if (!all && v.POSTGRES_EXCLUDE_DB.length > 0) problems.push('POSTGRES_EXCLUDE_DB: only used with POSTGRES_DB=*; remove it, or set POSTGRES_DB=*');
  let postgres: Config['postgres'];
  if (databases.length > 0 || all) {
    if (v.POSTGRES_HOST === undefined) problems.push(`POSTGRES_HOST: required when POSTGRES_DB is set ${example('POSTGRES_HOST')}`);
    if (v.POSTGRES_USER === undefined) problems.push(`POSTGRES_USER: required when POSTGRES_DB is set ${example('POSTGRES_USER')}`);
    const extraOpts = checkExtraOpts(v.POSTGRES_EXTRA_OPTS, problems);
    const ownCompression = compressionIn(extraOpts);
    if (ownCompression !== undefined) {
      warnings.push(`POSTGRES_EXTRA_OPTS sets pg_dump's own compression (${ownCompression}), which wins over POSTGRES_COMPRESSION; remove it for zstd on every core, several times faster`);
    }
    if (v.POSTGRES_HOST !== undefined && v.POSTGRES_USER !== undefined) {
      postgres = {
        host: v.POSTGRES_HOST,
        port: v.POSTGRES_PORT,
        user: v.POSTGRES_USER,
        // PGPASSWORD, which libpq reads, works too; both leave the environment once read (removeSecrets).
        password: v.POSTGRES_PASSWORD ?? env.PGPASSWORD,
        databases: [...new Set(databases)],
        all,
        exclude: v.POSTGRES_EXCLUDE_DB,
        globals: v.POSTGRES_GLOBALS,
        extraOpts,
        compression: ownCompression === undefined ? v.POSTGRES_COMPRESSION : { method: 'pg_dump', setting: ownCompression },
        safetyCompression: v.POSTGRES_COMPRESSION,
        parallel: v.POSTGRES_PARALLEL ?? Math.max(1, Math.floor(availableParallelism() / 2)),
        maintenanceDb: v.POSTGRES_MAINTENANCE_DB,
        binDir: v.PG_BIN_DIR,
      };
    }
  }
  if (v.WAL_ARCHIVE && databases.length === 0 && !all) problems.push('WAL_ARCHIVE: needs the PostgreSQL settings to stream from: set POSTGRES_HOST, POSTGRES_USER and POSTGRES_DB (example: POSTGRES_DB=app)');
  const backupDir = v.BACKUP_DIR.replace(/(.)\/+$/, '$1');
  for (const m of v.MEDIA_PATHS) {
    const overlap = folderOverlap(m.path, backupDir);
    if (overlap !== undefined) {
      problems.push(`MEDIA_PATHS: ${m.name}:${m.path} ${overlap} BACKUP_DIR (${backupDir}): it would archive the backups themselves, and its restore would delete newer runs; keep media folders and the backups volume apart`);
    }
  }
  if (databases.length === 0 && !all && v.MEDIA_PATHS.length === 0 && options.needSources !== false) {
    problems.push(
      `POSTGRES_DB, MEDIA_PATHS: nothing to back up; set one or both (example: POSTGRES_DB=app or MEDIA_PATHS=uploads:/data/uploads)`,
    );
  }
  const retention = {
    days: v.BACKUP_KEEP_DAYS,
    weeks: v.BACKUP_KEEP_WEEKS,
    months: v.BACKUP_KEEP_MONTHS,
    years: v.BACKUP_KEEP_YEARS,
    minutes: v.BACKUP_KEEP_MINS,
    last: v.BACKUP_KEEP_LAST,
  };
  const s3 = v.S3_BUCKET === undefined ? undefined : s3Config(v, retention, env, problems);
  const sftp = v.SFTP_HOST === undefined ? undefined : sftpConfig(v, retention, problems);
  const { encryption, decryption } = cryptoConfig(v, problems);
  const signing = signingConfig(v, problems);
  if (problems.length > 0) return { config: undefined, problems, settings, warnings };

  return {
    config: {
      postgres,
      media: v.MEDIA_PATHS,
      mediaExclude: v.MEDIA_EXCLUDE,
      mediaCompression: v.MEDIA_COMPRESSION,
      backupDir,
      label: v.BACKUP_LABEL,
      retention,
      keepPreRestore: v.BACKUP_KEEP_PRE_RESTORE,
      restoreSafety: v.RESTORE_SAFETY,
      timeZone: v.TZ === undefined || v.TZ === '' ? 'UTC' : v.TZ,
      s3,
      sftp,
      daemon: {
        schedule: v.SCHEDULE,
        onStart: v.BACKUP_ON_START,
        validateOnStart: v.VALIDATE_ON_START,
        shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT,
        healthMaxAgeMs: v.HEALTHCHECK_MAX_AGE,
        healthPort: v.HEALTHCHECK_PORT,
        healthBind: v.HEALTHCHECK_BIND,
        statusPassword: v.STATUS_PASSWORD,
        verifySchedule: v.VERIFY_SCHEDULE,
        requireVerify: v.HEALTHCHECK_REQUIRE_VERIFY,
        requireOffsite: v.HEALTHCHECK_REQUIRE_OFFSITE ?? (v.S3_BUCKET !== undefined || v.SFTP_HOST !== undefined),
      },
      encryption,
      decryption,
      verify: {
        postgres:
          postgres === undefined || v.VERIFY_POSTGRES_HOST === undefined
            ? postgres
            : {
                ...postgres,
                host: v.VERIFY_POSTGRES_HOST,
                port: v.VERIFY_POSTGRES_PORT ?? 5432,
                user: v.VERIFY_POSTGRES_USER ?? postgres.user,
                password: v.VERIFY_POSTGRES_PASSWORD,
              },
        sql: v.VERIFY_SQL,
      },
      hooks: {
        webhookUrl: v.WEBHOOK_URL,
        webhookErrorUrl: v.WEBHOOK_ERROR_URL,
        webhookPreUrl: v.WEBHOOK_PRE_BACKUP_URL,
        webhookFormat: v.WEBHOOK_FORMAT,
        healthchecksUrl: v.HEALTHCHECKS_URL,
        webhookPostUrl: v.WEBHOOK_POST_BACKUP_URL,
        preCommand: v.BACKUP_PRE_COMMAND,
        postCommand: v.BACKUP_POST_COMMAND,
        env: Object.fromEntries(
          v.HOOK_ENV.map((name) => [name, settings.find((s) => s.name === name)?.value ?? env[name]]).filter((e): e is [string, string] => e[1] !== undefined),
        ),
      },
      signing,
      wal: { enabled: v.WAL_ARCHIVE, slot: v.WAL_SLOT, synchronous: v.WAL_SYNCHRONOUS, baseBackupSchedule: v.BASE_BACKUP_SCHEDULE, maxLagMs: v.WAL_MAX_LAG, partialIntervalMs: v.WAL_PARTIAL_INTERVAL, serverBinDir: v.PG_SERVER_BIN_DIR },
      historyMax: v.HISTORY_MAX,
      sizeDrop: { warn: v.SIZE_DROP_WARN, minRows: v.SIZE_DROP_MIN_ROWS },
      diskFreeMin: v.DISK_FREE_MIN,
      clockSkewMs: v.CLOCK_SKEW_MAX,
      lockWaitMs: v.LOCK_WAIT,
      fakeNow: v.BACKUP_FAKE_NOW === undefined ? undefined : new Date(v.BACKUP_FAKE_NOW),
      progressEveryMs: v.LOG_PROGRESS_EVERY,
      logLevel: v.LOG_LEVEL,
      logFormat: v.LOG_FORMAT ?? (options.tty === true ? 'pretty' : 'json'),
    },
    problems,
    settings,
    warnings,
  };
}

type Values = { [K in EnvName]: z.output<(typeof ENV)[K]['schema']> };

function cryptoConfig(v: Values, problems: string[]): Pick<Config, 'encryption' | 'decryption'> {
  const recipients = v.ENCRYPTION_RECIPIENTS;
  const passphrase = v.ENCRYPTION_PASSPHRASE === '' ? undefined : v.ENCRYPTION_PASSPHRASE;
  if (recipients.length > 0 && passphrase !== undefined) {
    problems.push('ENCRYPTION_RECIPIENTS, ENCRYPTION_PASSPHRASE: set one of them (age cannot mix public keys and a passphrase in one file)');
  }
  let identities: string[] = [];
  if (v.ENCRYPTION_IDENTITY_FILE !== undefined) {
    try {
      identities = readFileSync(v.ENCRYPTION_IDENTITY_FILE, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.startsWith('AGE-SECRET-KEY-'));
      if (identities.length === 0) problems.push(`ENCRYPTION_IDENTITY_FILE="${v.ENCRYPTION_IDENTITY_FILE}": no AGE-SECRET-KEY-1… line in it; make one with age-keygen`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push(`ENCRYPTION_IDENTITY_FILE="${v.ENCRYPTION_IDENTITY_FILE}": cannot read the file (${code}); mount it there or fix the path`);
    }
  }
  return {
    encryption: recipients.length > 0 ? { recipients } : passphrase !== undefined ? { passphrase } : undefined,
    decryption: identities.length > 0 || passphrase !== undefined ? { identities, passphrase } : undefined,
  };
}

/** BACKUP_SIGNING_KEY: one key per line (the first signs); else a key derived from ENCRYPTION_PASSPHRASE. */
function signingConfig(v: Values, problems: string[]): SigningKeys | undefined {
  const lines = (v.BACKUP_SIGNING_KEY ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.some((l) => l.length < MIN_KEY_LENGTH)) {
    problems.push(`BACKUP_SIGNING_KEY: each key must be at least ${MIN_KEY_LENGTH} characters; make one with: openssl rand -hex 32`);
    return undefined;
  }
  if (lines.length > 0) return { keys: lines.map((l) => Buffer.from(l, 'utf8')), from: 'BACKUP_SIGNING_KEY' };
  const passphrase = v.ENCRYPTION_PASSPHRASE;
  return passphrase === undefined || passphrase === '' ? undefined : { keys: [keyFromPassphrase(passphrase)], from: 'ENCRYPTION_PASSPHRASE' };
}

/** A remote target's retention: BACKUP_KEEP_* with its own <TARGET>_KEEP_DAYS/WEEKS/MONTHS/YEARS overrides. */
function targetRetention(retention: RetentionPolicy, [days, weeks, months, years]: (number | undefined)[]): RetentionPolicy {
  return { ...retention, days: days ?? retention.days, weeks: weeks ?? retention.weeks, months: months ?? retention.months, years: years ?? retention.years };
}

function s3Config(v: Values, retention: RetentionPolicy, env: Env, problems: string[]): S3Config | undefined {
  const keyId = v.AWS_ACCESS_KEY_ID;
  const secret = v.AWS_SECRET_ACCESS_KEY;
  if ((keyId === undefined) !== (secret === undefined)) {
    problems.push(`AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: set both or neither (neither: the SDK's default credential chain)`);
  }
  if (v.S3_SSE_KMS_KEY_ID !== undefined && v.S3_SSE !== 'aws:kms') {
    problems.push(`S3_SSE_KMS_KEY_ID: only used with S3_SSE=aws:kms; set that too ${example('S3_SSE')}`);
  }
  const endpoint = v.S3_ENDPOINT;
  return {
    bucket: v.S3_BUCKET!,
    prefix: v.S3_PREFIX,
    region: v.S3_REGION ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: v.S3_FORCE_PATH_STYLE ?? endpoint !== undefined,
    credentials: keyId !== undefined && secret !== undefined ? { accessKeyId: keyId, secretAccessKey: secret, sessionToken: v.AWS_SESSION_TOKEN } : undefined,
    storageClass: v.S3_STORAGE_CLASS,
    sse: v.S3_SSE,
    sseKmsKeyId: v.S3_SSE_KMS_KEY_ID,
    partSize: v.S3_PART_SIZE,
    queueSize: v.S3_QUEUE_SIZE,
    maxParts: v.S3_MAX_PARTS,
    // Custom endpoints get checksums only when an operation requires them: see README, "S3-compatible stores".
    checksums: v.S3_CHECKSUMS === 'auto' ? (endpoint === undefined ? 'always' : 'when-required') : v.S3_CHECKSUMS,
    maxAttempts: v.S3_MAX_ATTEMPTS,
    timeoutMs: v.S3_TIMEOUT,
    retention: targetRetention(retention, [v.S3_KEEP_DAYS, v.S3_KEEP_WEEKS, v.S3_KEEP_MONTHS, v.S3_KEEP_YEARS]),
    lifecycle: {
      transitionDays: v.S3_TRANSITION_DAYS,
      transitionClass: v.S3_TRANSITION_CLASS,
      transitionTiers: v.S3_TRANSITION_TIERS,
      marginDays: v.S3_LIFECYCLE_MARGIN_DAYS,
      abortIncompleteDays: v.S3_ABORT_INCOMPLETE_DAYS,
    },
  };
}

function sftpConfig(v: Values, retention: RetentionPolicy, problems: string[]): SftpConfig | undefined {
  if (v.SFTP_USER === undefined) problems.push(`SFTP_USER: needed with SFTP_HOST ${example('SFTP_USER')}`);
  if (v.SFTP_PASSWORD === undefined && v.SFTP_IDENTITY_FILE === undefined) problems.push('SFTP_PASSWORD, SFTP_IDENTITY_FILE: set one to log in to SFTP_HOST');
  let privateKey: string | undefined;
  if (v.SFTP_IDENTITY_FILE !== undefined) {
    try {
      privateKey = readFileSync(v.SFTP_IDENTITY_FILE, 'utf8');
    } catch (error) {
      problems.push(`SFTP_IDENTITY_FILE="${v.SFTP_IDENTITY_FILE}": cannot read the file (${(error as NodeJS.ErrnoException).code}); mount the key there or fix the path`);
    }
  }
  let hostKey: SftpConfig['hostKey'] | undefined;
  const line = v.SFTP_HOST_KEY;
  if (line === undefined) {
    problems.push(`SFTP_HOST_KEY: needed, so that backups never go to an impostor: the server's key line, from \`ssh-keyscan -t ed25519 ${v.SFTP_HOST}\` or its /etc/ssh/ssh_host_ed25519_key.pub (or "any", not recommended)`);
  } else if (line === 'any') {
    hostKey = 'any';
  } else {
    // known_hosts lines start with the host names; .pub lines with the type. The key is base64.
    const fields = line.split(/\s+/);
    const at = fields.findIndex((f) => /^(ssh-|ecdsa-|sk-)/.test(f));
    const key = fields[at + 1];
    if (at < 0 || key === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) {
      problems.push(`SFTP_HOST_KEY: expected a public key line such as "ssh-ed25519 AAAAC3Nz..." ${example('SFTP_HOST_KEY')}`);
    } else hostKey = { type: fields[at]!, key: Buffer.from(key, 'base64') };
  }
  if (v.SFTP_USER === undefined || hostKey === undefined) return undefined;
  return {
    host: v.SFTP_HOST!,
    port: v.SFTP_PORT,
    user: v.SFTP_USER,
    password: v.SFTP_PASSWORD,
    privateKey,
    passphrase: v.SFTP_IDENTITY_PASSPHRASE,
    path: v.SFTP_PATH.replace(/\/+$/, '') || '/',
    hostKey,
    timeoutMs: v.SFTP_TIMEOUT,
    retention: targetRetention(retention, [v.SFTP_KEEP_DAYS, v.SFTP_KEEP_WEEKS, v.SFTP_KEEP_MONTHS, v.SFTP_KEEP_YEARS]),
  };
}

/** pg_dump's -Z / --compress setting in the extra options, if any. */
function compressionIn(extraOpts: string[]): string | undefined {
  for (let i = 0; i < extraOpts.length; i++) {
    const a = extraOpts[i]!;
    if (a === '-Z' || a === '--compress') return extraOpts[i + 1] ?? '';
    if (a.startsWith('--compress=')) return a.slice('--compress='.length);
    if (a.startsWith('-Z')) return a.slice(2);
  }
  return undefined;
}

/** Removes -Fc, -F c, --format=custom (and the like); any other format stays, to be refused. */
function dropCustomFormat(args: string[]): string[] {
  const custom = (v: string | undefined) => v === 'c' || v === 'custom';
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === '-F' || a === '--format') && custom(args[i + 1])) i++;
    else if (!((a.startsWith('-F') && a.length > 2 && custom(a.slice(2))) || (a.startsWith('--format=') && custom(a.slice('--format='.length))))) out.push(a);
  }
  return out;
}

function checkExtraOpts(raw: string, problems: string[]): string[] {
  if (/["']/.test(raw)) {
    problems.push(
      `POSTGRES_EXTRA_OPTS: quotes are passed to pg_dump as they are; escape a space with a backslash instead ${example('POSTGRES_EXTRA_OPTS')}`,
    );
    return [];
  }
  // The custom format is what backup-sidecar writes anyway: -Fc as the peers' examples have it is a no-op.
  const args = dropCustomFormat(parseCommandString(raw));
  for (const arg of args) {
    for (const names of RESERVED_DUMP_OPTS) {
      const hit = names.find((n) => arg === n || arg.startsWith(n.length === 2 ? n : `${n}=`) );
      if (hit !== undefined) {
        problems.push(`POSTGRES_EXTRA_OPTS: ${hit} is set by backup-sidecar itself; remove it ${example('POSTGRES_EXTRA_OPTS')}`);
      }
    }
  }
  return args;
}
