import { closest } from '../util/closest.ts';
import type { EnvName } from './schema.ts';

type Env = Record<string, string | undefined>;

/**
 * Variables of the peer images read as ours, so that their users' compose files work with only the
 * image name changed: eeshugerman/postgres-backup-s3 names these differently.
 */
export const ALIASES: Readonly<Record<string, EnvName>> = {
  POSTGRES_DATABASE: 'POSTGRES_DB',
  S3_ACCESS_KEY_ID: 'AWS_ACCESS_KEY_ID',
  S3_SECRET_ACCESS_KEY: 'AWS_SECRET_ACCESS_KEY',
  PGDUMP_EXTRA_OPTS: 'POSTGRES_EXTRA_OPTS',
  // postgres-backup-s3 encrypts with gpg and this passphrase; here it is age's (files end in .age).
  PASSPHRASE: 'ENCRYPTION_PASSPHRASE',
  // offen/docker-volume-backup's age passphrase: the same age scrypt encryption.
  AGE_PASSPHRASE: 'ENCRYPTION_PASSPHRASE',
};

/** Peer variables with no equivalent here: each is a warning at start saying what happens instead. */
export const IGNORED: Readonly<Record<string, string>> = {
  BACKUP_SUFFIX: 'file names are fixed here (<database>.dump.zst, <name>.tar.gz)',
  BACKUP_LATEST_TYPE: 'no "latest" link is made (the volume holds no links); `restore latest` finds the newest run',
  WEBHOOK_EXTRA_ARGS: 'webhooks are sent without curl, as a JSON POST',
  POSTGRES_PASSFILE_STORE: 'use POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE',
  BACKUP_FILENAME: 'file names are fixed here (<database>.dump.zst, <name>.tar.gz), one folder per run',
  BACKUP_COMPRESSION: 'dumps are compressed as POSTGRES_COMPRESSION says, media tarballs as MEDIA_COMPRESSION',
  BACKUP_SOURCES: 'the folders to archive are MEDIA_PATHS (name:/path, comma-separated)',
  NOTIFICATION_URLS: 'notifications go to WEBHOOK_URL / WEBHOOK_ERROR_URL (WEBHOOK_FORMAT=slack|discord|ntfy|json|text)',
};

/** Peer variables that would be unsafe to ignore (a schedule, a retention): set, they stop the start. */
export const REFUSED: Readonly<Record<string, string>> = {
  BACKUP_CRON_EXPRESSION: 'use SCHEDULE (a cron expression) instead: ignoring it would back up on another schedule',
  BACKUP_RETENTION_DAYS: 'use BACKUP_KEEP_DAYS (and BACKUP_KEEP_WEEKS, _MONTHS) instead: ignoring it would keep runs for another time',
  AWS_S3_BUCKET_NAME: 'use S3_BUCKET instead: ignoring it would leave every backup on this host only',
  AWS_S3_PATH: 'use S3_PREFIX instead: ignoring it would write to another place in the bucket',
  AWS_ENDPOINT: 'use S3_ENDPOINT instead: ignoring it would send the backups to AWS',
  GPG_PASSPHRASE: 'use ENCRYPTION_PASSPHRASE (age, not gpg) instead: ignoring it would store the backups unencrypted',
  AGE_PUBLIC_KEYS: 'use ENCRYPTION_RECIPIENTS instead: ignoring it would store the backups unencrypted',
};

/** One warning per peer variable that is set but has no equivalent, and one problem per one that must not be ignored. */
export function peerVariables(env: Env): { warnings: string[]; problems: string[] } {
  const set = (table: Readonly<Record<string, string>>) => Object.entries(table).filter(([name]) => env[name] !== undefined);
  return {
    warnings: set(IGNORED).map(([name, instead]) => `${name}: not used by backup-sidecar, ignored: ${instead}`),
    problems: set(REFUSED).map(([name, instead]) => `${name}: not a variable of backup-sidecar; ${instead}`),
  };
}

/** Aliases that may hold a secret: they leave the environment like ours. */
export const SECRET_ALIASES: readonly string[] = ['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'PASSPHRASE', 'AGE_PASSPHRASE', 'GPG_PASSPHRASE'];

/**
 * The environment with every alias (and its `_FILE` form) copied to our name. Both set to different
 * values is a problem, said in one line.
 */
export function resolveAliases(env: Env, problems: string[]): Env {
  const out: Env = { ...env };
  for (const [alias, ours] of Object.entries(ALIASES)) {
    for (const suffix of ['', '_FILE']) {
      const value = env[`${alias}${suffix}`];
      if (value === undefined) continue;
      const existing = env[`${ours}${suffix}`];
      if (existing !== undefined && existing !== value) {
        problems.push(`${alias}${suffix}, ${ours}${suffix}: both set, to different values; keep ${ours}${suffix} (${alias} is ${alias === 'AGE_PASSPHRASE' ? 'docker-volume-backup' : 'postgres-backup-s3'}'s name for it)`);
        continue;
      }
      out[`${ours}${suffix}`] = value;
    }
  }
  return out;
}

/** Prefixes of our variables: an unknown one that looks like a known one is most likely a typo. */
const PREFIXES = ['POSTGRES_', 'S3_', 'SFTP_', 'BACKUP_', 'WEBHOOK_', 'ENCRYPTION_', 'HEALTHCHECK_', 'VERIFY_', 'RESTORE_', 'WAL_', 'STATUS_', 'SIZE_', 'LOCK_', 'MEDIA_'];

/** One warning per unknown variable with one of our prefixes that is close to a known name. */
export function typoWarnings(env: Env, known: readonly string[]): string[] {
  const names = [...known, ...known.map((n) => `${n}_FILE`), ...Object.keys(ALIASES)];
  const warnings: string[] = [];
  for (const key of Object.keys(env).sort()) {
    if (!PREFIXES.some((p) => key.startsWith(p)) || names.includes(key) || key in IGNORED || key in REFUSED) continue;
    const guess = closest(key, names);
    if (guess !== undefined) warnings.push(`${key}: not a variable of backup-sidecar, ignored; did you mean ${guess}?`);
  }
  return warnings;
}
