import type { LifecycleRule } from '@aws-sdk/client-s3';
import type { RetentionPolicy, S3Config } from '../config/config.ts';
import { TIERS, type Tier } from '../naming.ts';
import { tierCount } from '../retention/policy.ts';

/** Days after upload by which prune has removed a run of each tier's own window; -1: never. */
const PERIOD_DAYS: Record<Tier, number> = { daily: 1, weekly: 7, monthly: 31, yearly: 366 };

function windowDays(tier: Tier, policy: RetentionPolicy): number {
  // BACKUP_KEEP_MINS keeps every run that young on top of the tier windows.
  const minutesDays = policy.minutes === undefined ? 0 : Math.ceil(policy.minutes / 1440);
  const n = tierCount(tier, policy);
  // A window of N calendar periods reaches back at most N + 1 periods' worth of days.
  return n === -1 ? -1 : Math.max(minutesDays, n === 0 ? 0 : (n + 1) * PERIOD_DAYS[tier]);
}

/** The ID prefix of the rules this tool owns on a bucket, per S3_PREFIX: --apply replaces only those. */
export function ruleIdPrefix(prefix: string): string {
  return `backup-sidecar:${prefix === '' ? '/' : prefix}:`;
}

export interface LifecyclePlan {
  rules: LifecycleRule[];
  notes: string[];
}

/**
 * Bucket lifecycle rules matching the retention settings: per tier prefix, an expiration as a backstop
 * behind prune (a run of a higher tier counts in every lower tier's window, and a margin is added,
 * because prune counts from the newest run while the bucket counts from the upload), an optional
 * transition, and one rule that aborts multipart uploads a crash left behind. Pure.
 */
export function lifecyclePlan(s3: Pick<S3Config, 'prefix' | 'retention' | 'lifecycle'>): LifecyclePlan {
  const head = s3.prefix === '' ? '' : `${s3.prefix}/`;
  const id = ruleIdPrefix(s3.prefix);
  const { transitionDays, transitionClass, transitionTiers, marginDays, abortIncompleteDays } = s3.lifecycle;
  const rules: LifecycleRule[] = [];
  const notes: string[] = [];
  for (const tier of TIERS) {
    const windows = TIERS.slice(0, TIERS.indexOf(tier) + 1).map((t) => windowDays(t, s3.retention));
    const forever = windows.includes(-1);
    const expiration = forever ? undefined : Math.max(1, ...windows) + marginDays;
    let transition = transitionDays !== undefined && transitionTiers.includes(tier) ? transitionDays : undefined;
    if (transition !== undefined && expiration !== undefined && transition >= expiration) {
      notes.push(`${tier}: no transition, runs expire after ${expiration} days, before S3_TRANSITION_DAYS=${transition}`);
      transition = undefined;
    }
    if (expiration === undefined && transition === undefined) {
      notes.push(`${tier}: kept forever (a -1 retention), no rule`);
      continue;
    }
    rules.push({
      ID: `${id}${tier}`,
      Status: 'Enabled',
      Filter: { Prefix: `${head}${tier}/` },
      ...(expiration === undefined ? {} : { Expiration: { Days: expiration } }),
      ...(transition === undefined ? {} : { Transitions: [{ Days: transition, StorageClass: transitionClass }] }),
    });
  }
  rules.push({
    ID: `${id}abort-incomplete-uploads`,
    Status: 'Enabled',
    Filter: { Prefix: head },
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: abortIncompleteDays },
  });
  return { rules, notes };
}
