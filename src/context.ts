import type { Config, PostgresConfig, RetentionPolicy } from './config/config.ts';
import { UsageError } from './errors.ts';
import { KINDS, type Kind } from './kinds/registry.ts';
import type { Logger } from './log.ts';
import type { OffsiteStore } from './offsite/store.ts';
import { hasRemoteTargets, remoteTargets } from './offsite/targets.ts';
import type { RetentionOptions } from './retention/policy.ts';
import { progress, type Follow } from './util/progress.ts';
import type { RunTrust } from './volume/runs.ts';

/**
 * Everything a command works with, built once at the top (main.ts) and handed down: the configuration,
 * parsed once; the log; the clock; the stop signal; the kinds of artifact; the remote targets. Nothing
 * below the CLI reads the environment or builds any of these itself.
 */
export interface Context {
  readonly config: Config;
  readonly log: Logger;
  /** The clock of the core: real time, or BACKUP_FAKE_NOW (tests). */
  readonly now: () => Date;
  /** Aborted by SIGTERM/SIGINT; undefined in the daemon, which stops gracefully on its own. */
  readonly signal: AbortSignal | undefined;
  /** Every kind of artifact, in the order runs produce and restores apply them. */
  readonly kinds: readonly Kind[];
  /** Whether any remote target is configured (without loading one). */
  readonly hasRemoteTargets: boolean;
  /** The remote targets, loaded on first use (the AWS SDK alone costs about 15 MiB), the same list after. */
  targets(): Promise<OffsiteStore[]>;
  /** The latest time a run may be dated and still be trusted: now plus CLOCK_SKEW_MAX. */
  notAfter(): Date;
  /** Retention for the volume, or (with a target's policy) for that remote target. */
  retention(policy?: RetentionPolicy): RetentionOptions;
  /** Which runs may count as the newest; `trustUnsigned` from --trust-unsigned. */
  trust(trustUnsigned?: boolean): RunTrust;
  /** Follows a long transfer: log lines every LOG_PROGRESS_EVERY, or a live line on a terminal. */
  follow: Follow;
  /** The PostgreSQL settings, or a usage error naming what to set. */
  postgres(): PostgresConfig;
}

/** Real time, or (BACKUP_FAKE_NOW, tests only) a fake start that runs on from there. */
function clockOf(fake: Date | undefined): () => Date {
  if (fake === undefined) return () => new Date();
  const began = Date.now();
  return () => new Date(fake.getTime() + (Date.now() - began));
}

export function createContext(config: Config, log: Logger, signal: AbortSignal | undefined): Context {
  let targets: Promise<OffsiteStore[]> | undefined;
  const now = clockOf(config.fakeNow);
  const notAfter = () => new Date(now().getTime() + config.clockSkewMs);
  return {
    config,
    log,
    now,
    signal,
    kinds: KINDS,
    hasRemoteTargets: hasRemoteTargets(config),
    targets: () => (targets ??= remoteTargets(config, log)),
    notAfter,
    retention: (policy = config.retention) => ({ policy, keepPreRestore: config.keepPreRestore, timeZone: config.timeZone, notAfter: notAfter() }),
    trust: (trustUnsigned = false) => ({ notAfter: notAfter(), signing: config.signing, trustUnsigned }),
    // A live line only where a person watches: stderr a terminal, and logs for people.
    follow: (what, bytes, total) => progress(log, what, bytes, { everyMs: config.progressEveryMs, total, live: process.stderr.isTTY === true && config.logFormat === 'pretty' }),
    postgres: () => {
      if (config.postgres === undefined) {
        throw new UsageError('POSTGRES_HOST, POSTGRES_USER, POSTGRES_DB: needed to reach PostgreSQL (example: POSTGRES_HOST=db POSTGRES_USER=postgres POSTGRES_DB=app)');
      }
      return config.postgres;
    },
  };
}
