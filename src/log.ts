import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from './config/config.ts';

export type { Logger } from 'pino';

/**
 * Keys that could carry a secret if someone logged an env or config object. Secrets are never passed
 * to the logger on purpose; this is the second line of defence.
 */
const REDACT = [
  'password',
  '*.password',
  'PGPASSWORD',
  '*.PGPASSWORD',
  'env',
  '*.env',
  'config.postgres.password',
];

/** The root logger. Logs go to stderr so that stdout stays for command output (tables, JSON). */
export function createLogger(level: LogLevel, format: 'json' | 'pretty'): Logger {
  const options = { level, base: { app: 'backup-sidecar' }, redact: { paths: REDACT, censor: '[redacted]' } };
  if (format === 'pretty') {
    return pino(options, pretty({ destination: 2, sync: true, ignore: 'pid,hostname,app', singleLine: true }));
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}
