import { GetBucketLifecycleConfigurationCommand, PutBucketLifecycleConfigurationCommand, type LifecycleRule } from '@aws-sdk/client-s3';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { createS3Client, s3Problem } from '../s3/client.ts';
import { lifecyclePlan, ruleIdPrefix } from '../s3/lifecycle.ts';

/**
 * `lifecycle [--apply]`: prints the bucket lifecycle configuration matching the retention settings (the
 * JSON `aws s3api put-bucket-lifecycle-configuration` takes); --apply puts it on the bucket, replacing
 * only this tool's rules for this S3_PREFIX and keeping every other rule.
 */
export async function lifecycleCommand({ config }: Context, apply: boolean): Promise<number> {
  const s3 = config.s3;
  if (s3 === undefined) throw new UsageError('S3_BUCKET: needed for lifecycle rules (example: S3_BUCKET=my-backups)');
  const plan = lifecyclePlan(s3);
  if (!apply) {
    process.stdout.write(`${JSON.stringify({ Rules: plan.rules }, null, 2)}\n`);
    for (const note of plan.notes) process.stderr.write(`note: ${note}\n`);
    return 0;
  }
  const client = createS3Client(s3);
  let existing: LifecycleRule[] = [];
  try {
    existing = (await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: s3.bucket }))).Rules ?? [];
  } catch (error) {
    if ((error as { name?: string }).name !== 'NoSuchLifecycleConfiguration') throw s3Problem(error, 'reading the lifecycle rules', s3);
  }
  const others = existing.filter((r) => !(r.ID ?? '').startsWith(ruleIdPrefix(s3.prefix)));
  const rules = [...others, ...plan.rules];
  try {
    await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: s3.bucket, LifecycleConfiguration: { Rules: rules } }));
  } catch (error) {
    throw s3Problem(error, 'putting the lifecycle rules', s3);
  }
  for (const note of plan.notes) process.stderr.write(`note: ${note}\n`);
  process.stdout.write(`applied ${plan.rules.length} rules to s3://${s3.bucket} (${others.length} other rules kept)\n`);
  return 0;
}
