import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { OffsiteStore } from './store.ts';

interface TargetEntry {
  /** Whether the configuration names this target. */
  configured(config: Config): boolean;
  /** Loads its code only when configured (the AWS SDK alone costs about 15 MiB). */
  open(config: Config, log: Logger): Promise<OffsiteStore>;
}

/**
 * Every kind of remote target, in a fixed order. A new target is a file implementing OffsiteStore, its
 * configuration entries, and one line here.
 */
const TARGETS: TargetEntry[] = [
  { configured: (c) => c.s3 !== undefined, open: async (c, log) => new (await import('../s3/store.ts')).S3Store(c.s3!, log) },
  { configured: (c) => c.sftp !== undefined, open: async (c, log) => new (await import('../sftp/store.ts')).SftpStore(c.sftp!, log) },
];

/** Every remote target the configuration names. */
export async function remoteTargets(config: Config, log: Logger): Promise<OffsiteStore[]> {
  return Promise.all(TARGETS.filter((t) => t.configured(config)).map((t) => t.open(config, log)));
}

/** Whether any remote target is configured (without loading one). */
export function hasRemoteTargets(config: Config): boolean {
  return TARGETS.some((t) => t.configured(config));
}
