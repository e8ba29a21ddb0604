/** The typed configuration the core works with. Built once, at the edge, by loadConfig. */
export interface PostgresConfig {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  databases: string[];
  /** Extra pg_dump arguments, already split. */
  extraOpts: string[];
  maintenanceDb: string;
  /** A fixed client folder; unset means: discover installed clients and pick by server major. */
  binDir: string | undefined;
}

export interface MediaFolder {
  name: string;
  path: string;
}

export type MediaCompression = 'gzip' | 'zstd';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface Config {
  postgres: PostgresConfig | undefined;
  media: MediaFolder[];
  mediaExclude: string[];
  mediaCompression: MediaCompression;
  backupDir: string;
  label: string | undefined;
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
}
