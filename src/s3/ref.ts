import type { S3Config } from '../config/config.ts';
import { UsageError } from '../errors.ts';
import { MANIFEST, RUN_TIERS, parseObjectKey, parseRunId, type RunTier } from '../naming.ts';
import type { RemoteRef } from '../offsite/store.ts';

/** Parses s3://bucket/<prefix>/<tier>/<run-id>[/<file>] against the configured bucket and prefix. */
export function parseS3Url(url: string, s3: Pick<S3Config, 'bucket' | 'prefix'>): RemoteRef {
  const m = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(url);
  const hint = `expected s3://${s3.bucket}/${s3.prefix === '' ? '' : `${s3.prefix}/`}<tier>/<run-id>[/<file>]`;
  if (m === null) throw new UsageError(`"${url}" is not an S3 run or file: ${hint}`);
  if (m[1] !== s3.bucket) throw new UsageError(`"${url}" is in bucket "${m[1]}", but S3_BUCKET is "${s3.bucket}"`);
  const key = m[2]!;
  const asFile = parseObjectKey(s3.prefix, key);
  if (asFile !== undefined) return { tier: asFile.tier, id: asFile.run.id, file: asFile.file === MANIFEST ? undefined : asFile.file };
  const head = s3.prefix === '' ? '' : `${s3.prefix}/`;
  const [tier, id, ...rest] = key.startsWith(head) ? key.slice(head.length).split('/') : [];
  if (rest.length === 0 && tier !== undefined && (RUN_TIERS as readonly string[]).includes(tier) && id !== undefined && parseRunId(id) !== undefined) {
    return { tier: tier as RunTier, id, file: undefined };
  }
  throw new UsageError(`"${url}" is not a run or file of backup-sidecar: ${hint}`);
}
