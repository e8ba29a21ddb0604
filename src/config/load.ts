import { readFileSync } from 'node:fs';
import { parseCommandString } from 'execa';
import { z } from 'zod';
import { ENV, type EnvName, type EnvVar } from './schema.ts';
import type { Config } from './config.ts';

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

/** Parses the environment once. Never throws: problems come back as lines. */
export function loadConfig(env: Env = process.env): LoadResult {
  const problems: string[] = [];
  const settings: Setting[] = [];
  const values: Record<string, unknown> = {};

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
  if (problems.length > 0) return { config: undefined, problems, settings };

  const v = values as { [K in EnvName]: z.output<(typeof ENV)[K]['schema']> };
  const databases = v.POSTGRES_DB;
  let postgres: Config['postgres'];
  if (databases.length > 0) {
    if (v.POSTGRES_HOST === undefined) problems.push(`POSTGRES_HOST: required when POSTGRES_DB is set ${example('POSTGRES_HOST')}`);
    if (v.POSTGRES_USER === undefined) problems.push(`POSTGRES_USER: required when POSTGRES_DB is set ${example('POSTGRES_USER')}`);
    const extraOpts = checkExtraOpts(v.POSTGRES_EXTRA_OPTS, problems);
    if (v.POSTGRES_HOST !== undefined && v.POSTGRES_USER !== undefined) {
      postgres = {
        host: v.POSTGRES_HOST,
        port: v.POSTGRES_PORT,
        user: v.POSTGRES_USER,
        password: v.POSTGRES_PASSWORD,
        databases: [...new Set(databases)],
        extraOpts,
        maintenanceDb: v.POSTGRES_MAINTENANCE_DB,
        binDir: v.PG_BIN_DIR,
      };
    }
  }
  if (databases.length === 0 && v.MEDIA_PATHS.length === 0) {
    problems.push(
      `POSTGRES_DB, MEDIA_PATHS: nothing to back up; set one or both (example: POSTGRES_DB=app or MEDIA_PATHS=uploads:/data/uploads)`,
    );
  }
  if (problems.length > 0) return { config: undefined, problems, settings };

  return {
    config: {
      postgres,
      media: v.MEDIA_PATHS,
      mediaExclude: v.MEDIA_EXCLUDE,
      mediaCompression: v.MEDIA_COMPRESSION,
      backupDir: v.BACKUP_DIR.replace(/(.)\/+$/, '$1'),
      label: v.BACKUP_LABEL,
      logLevel: v.LOG_LEVEL,
      logFormat: v.LOG_FORMAT,
    },
    problems,
    settings,
  };
}

function checkExtraOpts(raw: string, problems: string[]): string[] {
  if (/["']/.test(raw)) {
    problems.push(
      `POSTGRES_EXTRA_OPTS: quotes are passed to pg_dump as they are; escape a space with a backslash instead ${example('POSTGRES_EXTRA_OPTS')}`,
    );
    return [];
  }
  const args = parseCommandString(raw);
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
