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
};

/** Aliases that may hold a secret: they leave the environment like ours. */
export const SECRET_ALIASES: readonly string[] = ['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'PASSPHRASE'];

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
        problems.push(`${alias}${suffix}, ${ours}${suffix}: both set, to different values; keep ${ours}${suffix} (${alias} is postgres-backup-s3's name for it)`);
        continue;
      }
      out[`${ours}${suffix}`] = value;
    }
  }
  return out;
}
