import type { SigningKeys } from '../crypto/signing.ts';

/** The typed configuration the core works with. Built once, at the edge, by loadConfig. */
/**
 * How dumps are compressed: zstd around an uncompressed custom-format dump (<db>.dump.zst), pg_dump's own
 * gzip or nothing (<db>.dump), or (pg_dump) whatever -Z / --compress POSTGRES_EXTRA_OPTS sets.
 */
export type DumpCompression = { method: 'zstd'; level: number } | { method: 'gzip'; level: number | undefined } | { method: 'none' } | { method: 'pg_dump'; setting: string };

export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** The databases named in POSTGRES_DB (empty with `all`). */
  databases: string[];
  /** POSTGRES_DB=* (or POSTGRES_CLUSTER): every database the user can connect to, found at each run, with the roles. */
  all: boolean;
  /** POSTGRES_EXCLUDE_DB, with `all`. */
  exclude: string[];
  /** Also back up roles and tablespaces (POSTGRES_GLOBALS). */
  globals: boolean;
  /** Extra pg_dump arguments, already split. */
  extraOpts: string[];
  /** For backups: POSTGRES_COMPRESSION, unless POSTGRES_EXTRA_OPTS sets pg_dump's own. */
  compression: DumpCompression;
  /** How many sources a run produces at once (POSTGRES_PARALLEL). */
  parallel: number;
  /** For safety backups, which never take POSTGRES_EXTRA_OPTS: POSTGRES_COMPRESSION. */
  safetyCompression: DumpCompression;
  maintenanceDb: string;
  /** A fixed client folder; unset means: discover installed clients and pick by server major. */
  binDir: string | undefined;
}

export interface MediaFolder {
  name: string;
  path: string;
}

/** dump: a dump into pre-restore/; keep: the replaced database renamed aside; none: nothing. */
export type RestoreSafety = 'dump' | 'keep' | 'none';

/** The body of every webhook (WEBHOOK_FORMAT). */
export type WebhookFormat = 'json' | 'slack' | 'discord' | 'ntfy' | 'text';

export type MediaCompression = 'gzip' | 'zstd';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** How long each tier is kept, counted from the newest successful run. -1: forever. */
export interface RetentionPolicy {
  days: number;
  weeks: number;
  months: number;
  years: number;
  /** Replaces `days` for the daily tier when set. */
  minutes: number | undefined;
  /** BACKUP_KEEP_LAST: the N newest complete runs are kept whatever their age. */
  last?: number | undefined;
}

export type StorageClass =
  | 'STANDARD'
  | 'REDUCED_REDUNDANCY'
  | 'STANDARD_IA'
  | 'ONEZONE_IA'
  | 'INTELLIGENT_TIERING'
  | 'GLACIER'
  | 'GLACIER_IR'
  | 'DEEP_ARCHIVE';

export interface SftpConfig {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** The private key's text (read at the edge), with its passphrase. */
  privateKey: string | undefined;
  passphrase: string | undefined;
  /** Base folder, without a trailing '/'. */
  path: string;
  /** The pinned host key (type and base64), or 'any'. */
  hostKey: { type: string; key: Buffer } | 'any';
  timeoutMs: number;
  retention: RetentionPolicy;
}

export interface S3Config {
  bucket: string;
  /** Without leading or trailing '/'; may be empty. */
  prefix: string;
  region: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Undefined: the SDK's default chain. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string | undefined } | undefined;
  storageClass: StorageClass | undefined;
  sse: 'AES256' | 'aws:kms' | undefined;
  sseKmsKeyId: string | undefined;
  partSize: number;
  queueSize: number;
  maxParts: number;
  checksums: 'always' | 'when-required';
  maxAttempts: number;
  timeoutMs: number;
  retention: RetentionPolicy;
  lifecycle: {
    transitionDays: number | undefined;
    transitionClass: Exclude<StorageClass, 'STANDARD' | 'REDUCED_REDUNDANCY'>;
    transitionTiers: string[];
    marginDays: number;
    abortIncompleteDays: number;
  };
}

export interface DaemonConfig {
  schedule: string;
  onStart: boolean;
  /** VALIDATE_ON_START: check the connections at start and log the result. */
  validateOnStart: boolean;
  shutdownTimeoutMs: number;
  /** Undefined: derived from the schedule. */
  healthMaxAgeMs: number | undefined;
  healthPort: number | undefined;
  /** HEALTHCHECK_BIND; undefined: every interface. */
  healthBind: string | undefined;
  /** Basic auth of the status page (STATUS_PASSWORD[_FILE]); undefined: open. */
  statusPassword: string | undefined;
  /** Cron of restore drills; undefined: none. */
  verifySchedule: string | undefined;
  /** Unhealthy when the last drill failed. */
  requireVerify: boolean;
  /** Unhealthy while the newest successful run is not offsite (HEALTHCHECK_REQUIRE_OFFSITE; default: with S3). */
  requireOffsite: boolean;
}

/** How artifacts are encrypted (age): to public keys, or with a passphrase. */
export type EncryptionConfig = { recipients: string[] } | { passphrase: string };

/** How restore, verify and drills decrypt: identities (AGE-SECRET-KEY-1…) and/or the passphrase. */
export interface DecryptionConfig {
  identities: string[];
  passphrase: string | undefined;
}

/** Restore drills: where scratch databases are made, and the extra check. */
export interface VerifyConfig {
  /** Undefined when no database is backed up. */
  postgres: PostgresConfig | undefined;
  sql: string | undefined;
}

export interface HooksConfig {
  webhookUrl: string | undefined;
  webhookErrorUrl: string | undefined;
  /** Told when a job starts, and after one that fully succeeded (docker-postgres-backup-local's pair). */
  webhookPreUrl: string | undefined;
  webhookFormat: WebhookFormat;
  healthchecksUrl: string | undefined;
  webhookPostUrl: string | undefined;
  preCommand: string | undefined;
  postCommand: string | undefined;
  /** The secrets HOOK_ENV lets the hooks see, by name. */
  env: Record<string, string>;
}

/** Point-in-time recovery: WAL streaming and base backups (WAL_ARCHIVE). */
export interface WalConfig {
  enabled: boolean;
  slot: string;
  synchronous: boolean;
  baseBackupSchedule: string;
  /** How often the segment being written is shipped to the remote targets (WAL_PARTIAL_INTERVAL). */
  partialIntervalMs: number;
  /** Unhealthy once streaming has been down this long (WAL_MAX_LAG). */
  maxLagMs: number;
  /** A server (postgres, pg_ctl) for the PITR drill (PG_SERVER_BIN_DIR); undefined: that drill is skipped. */
  serverBinDir: string | undefined;
}

export interface SizeDropConfig {
  /** A run is flagged below this share of the previous run's size or row count; 0: never. */
  warn: number;
  /** Tables with fewer rows before are not compared. */
  minRows: number;
}

export interface Config {
  postgres: PostgresConfig | undefined;
  media: MediaFolder[];
  mediaExclude: string[];
  mediaCompression: MediaCompression;
  backupDir: string;
  label: string | undefined;
  retention: RetentionPolicy;
  /** Safety backups kept, newest first. */
  keepPreRestore: number;
  /** What a restore keeps of what it replaces (RESTORE_SAFETY). */
  restoreSafety: RestoreSafety;
  /** IANA zone of the tier calendar. */
  timeZone: string;
  s3: S3Config | undefined;
  sftp: SftpConfig | undefined;
  daemon: DaemonConfig;
  verify: VerifyConfig;
  /** Undefined: artifacts are stored as they are. */
  encryption: EncryptionConfig | undefined;
  /** Undefined: no key to read encrypted runs with. */
  decryption: DecryptionConfig | undefined;
  hooks: HooksConfig;
  /** Undefined: runs are unsigned, and the bucket is trusted for content. */
  signing: SigningKeys | undefined;
  wal: WalConfig;
  /** Lines kept in .history.jsonl (HISTORY_MAX). */
  historyMax: number;
  /** Size anomalies: SIZE_DROP_WARN as a fraction (0: off), SIZE_DROP_MIN_ROWS. */
  sizeDrop: SizeDropConfig;
  /** status warns below this many free bytes in the volume. */
  diskFreeMin: number;
  /** How long to wait for the volume lock another process holds (LOCK_WAIT). */
  lockWaitMs: number;
  /** How far in the future a run may be dated before it is suspicious (CLOCK_SKEW_MAX). */
  clockSkewMs: number;
  /** Test-only clock start (BACKUP_FAKE_NOW). */
  fakeNow: Date | undefined;
  /** How often long transfers log their progress (LOG_PROGRESS_EVERY). */
  progressEveryMs: number;
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
}
