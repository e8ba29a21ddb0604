import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { OffsiteStore } from './store.ts';

/**
 * Every remote target the configuration names, in a fixed order. A new target is a file implementing
 * OffsiteStore, its configuration entries, and one line here. Each is loaded only when configured (the
 * AWS SDK alone costs about 15 MiB).
 */
export async function remoteTargets(config: Config, log: Logger): Promise<OffsiteStore[]> {
  const targets: OffsiteStore[] = [];
  // One line per target kind; keep hasRemoteTargets below in step.
  if (config.s3 !== undefined) targets.push(new (await import('../s3/store.ts')).S3Store(config.s3, log));
  if (config.sftp !== undefined) targets.push(new (await import('../sftp/store.ts')).SftpStore(config.sftp, log));
  return targets;
}

/** Whether any remote target is configured (without loading one). */
export function hasRemoteTargets(config: Config): boolean {
  return config.s3 !== undefined || config.sftp !== undefined;
}
