import { SECRET_ALIASES } from './aliases.ts';
import { ENV } from './schema.ts';

/** Every variable that may hold a secret, and PGPASSWORD, which libpq would read. */
export const SECRET_VARIABLES: readonly string[] = [
  ...Object.entries(ENV).filter(([, spec]) => 'secret' in spec && spec.secret).map(([name]) => name),
  ...SECRET_ALIASES,
  'PGPASSWORD',
];

/**
 * Once the configuration holds them, secrets leave the process environment, so that no child process
 * (pg_dump, psql, tar, hooks) inherits them: the PostgreSQL tools get PGPASSWORD from libpqEnv, hooks
 * only what HOOK_ENV names. Called once, at the edge.
 */
export function removeSecrets(env: NodeJS.ProcessEnv): void {
  for (const name of SECRET_VARIABLES) delete env[name];
}
