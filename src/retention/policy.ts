import type { RetentionPolicy } from '../config/config.ts';
import { PRE_RESTORE, TIERS, parseRunId, type RunTier, type Tier } from '../naming.ts';
import { periodsOf, type Periods } from './calendar.ts';

/** A run as retention sees it: a name, a tier, and whether it is complete (has a valid manifest). */
export interface RetentionRun {
  id: string;
  tier: RunTier;
  complete: boolean;
  /** A reason to keep the run whatever its age (such as: not offsite yet). */
  pinned?: string;
  /** Why the run cannot be trusted (unsigned, or its signature is wrong, with a signing key set): it never counts as the newest. */
  untrusted?: string;
  /** Runs of different series (dumps, base backups) are kept each by their own newest run; unset: one series. */
  series?: string;
}

export interface Decision {
  id: string;
  tier: RunTier;
  keep: boolean;
  reason: string;
  /** Dated in the future: kept, and to be reported. */
  suspicious?: true;
}

export interface RetentionOptions {
  policy: RetentionPolicy;
  keepPreRestore: number;
  timeZone: string;
  /**
   * Now plus CLOCK_SKEW_MAX: a run dated later was forged or left by a clock that jumped. It is kept and
   * reported, and never counts as the newest, so it cannot age every genuine run out.
   */
  notAfter: Date;
  /** Runs kept whatever their age, by id, with the reason (the good copy before an unacknowledged size drop). */
  holds?: ReadonlyMap<string, string>;
}

/** Whether a run's time lies beyond what the clock allows (see RetentionOptions.notAfter). */
export function isFutureDated(time: Date, notAfter: Date): boolean {
  return time.getTime() > notAfter.getTime();
}

const UNIT: Record<Tier, { field: keyof Periods; noun: string }> = {
  daily: { field: 'day', noun: 'day' },
  weekly: { field: 'week', noun: 'week' },
  monthly: { field: 'month', noun: 'month' },
  yearly: { field: 'year', noun: 'year' },
};

/** How many periods of its tier a policy keeps (BACKUP_KEEP_DAYS for daily ...); -1: forever. */
export function tierCount(tier: Tier, policy: RetentionPolicy): number {
  return { daily: policy.days, weekly: policy.weeks, monthly: policy.months, yearly: policy.years }[tier];
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Whether the policy keeps anything at all beyond the newest run. */
export function keepsNothing(policy: RetentionPolicy): boolean {
  return policy.minutes === undefined && (policy.last ?? 0) === 0 && TIERS.every((t) => tierCount(t, policy) === 0);
}

/** The reason a run of `tier` taken at `time` is inside a window, or undefined when it is outside all. */
function window(tier: Tier, time: Date, ref: Date, refPeriods: Periods, options: RetentionOptions, newestOfItsDay: boolean): string | undefined {
  const { policy, timeZone } = options;
  const periods = periodsOf(time, timeZone);
  // BACKUP_KEEP_MINS (docker-postgres-backup-local's meaning): every run that young is kept...
  if (policy.minutes !== undefined && ref.getTime() - time.getTime() < policy.minutes * 60_000) return `within ${plural(policy.minutes, 'minute')} of the newest run (BACKUP_KEEP_MINS)`;
  // A run of a higher tier also counts as one of every lower tier.
  for (const t of TIERS.slice(0, TIERS.indexOf(tier) + 1).reverse()) {
    // ... and older ones one a day: the newest of each day.
    if (t === 'daily' && policy.minutes !== undefined && !newestOfItsDay) continue;
    const n = tierCount(t, policy);
    if (n === -1) return `${t}: kept forever`;
    const { field, noun } = UNIT[t];
    if (refPeriods[field] - periods[field] < n) return `${t}: within ${plural(n, noun)} of the newest run`;
  }
  return undefined;
}

function expiredReason(tier: Tier, options: RetentionOptions, newestOfItsDay: boolean): string {
  const { policy } = options;
  if (tier === 'daily' && policy.minutes !== undefined && !newestOfItsDay) {
    return `daily: older than ${plural(policy.minutes, 'minute')} before the newest run, and not the newest of its day (BACKUP_KEEP_MINS keeps one a day)`;
  }
  return `${tier}: older than ${plural(tierCount(tier, policy), UNIT[tier].noun)} before the newest run`;
}

function referenceOf(regular: { run: RetentionRun; time: Date }[], options: RetentionOptions): { run: RetentionRun; time: Date } | undefined {
  return regular.find((p) => p.run.complete && p.run.untrusted === undefined && !isFutureDated(p.time, options.notAfter));
}

/**
 * The run all ages count from: the newest complete, trusted run not dated in the future. A caller that
 * can check trust only at a cost (a signature in the bucket) checks this one, marks it untrusted if it
 * fails, and asks again.
 */
export function referenceRun<R extends RetentionRun>(runs: readonly R[], options: RetentionOptions): R | undefined {
  const regular = runs
    .map((run) => ({ run, time: parseRunId(run.id)?.time }))
    .filter((p): p is { run: R; time: Date } => p.time !== undefined && p.run.tier !== PRE_RESTORE)
    .sort((a, b) => b.time.getTime() - a.time.getTime() || b.run.id.localeCompare(a.run.id));
  return referenceOf(regular, options)?.run as R | undefined;
}

/**
 * Which runs to keep and which to remove, with a reason for each. Pure: no clock (the caller gives
 * `notAfter`), no I/O. Ages count from the newest complete, trusted run that is not dated in the future,
 * so a job that fails for weeks never ages out its history and a forged or future-dated run cannot make
 * every genuine one look old. Never removes that run, never removes a future-dated run, never removes
 * anything when the policy keeps nothing or no run qualifies, and never removes a name this tool did not make.
 */
export function decide(runs: readonly RetentionRun[], options: RetentionOptions): Decision[] {
  const series = [...new Set(runs.map((r) => r.series ?? ''))];
  if (series.length <= 1) return decideSeries(runs, options);
  // Each series on its own: a newer dump never ages out the newest base backup, nor the reverse.
  const decided = new Map<RetentionRun, Decision>();
  for (const name of series) {
    const of = runs.filter((r) => (r.series ?? '') === name);
    decideSeries(of, options).forEach((d, i) => decided.set(of[i]!, d));
  }
  return runs.map((r) => decided.get(r)!);
}

function decideSeries(runs: readonly RetentionRun[], options: RetentionOptions): Decision[] {
  const parsed = runs.map((run) => ({ run, time: parseRunId(run.id)?.time }));
  const regular = parsed
    .filter((p): p is { run: RetentionRun; time: Date } => p.time !== undefined && p.run.tier !== PRE_RESTORE)
    .sort((a, b) => b.time.getTime() - a.time.getTime() || b.run.id.localeCompare(a.run.id));
  // Only a complete run the clock allows and nobody doubts may be the reference all ages count from.
  const newest = referenceOf(regular, options);
  const refusal =
    newest === undefined
      ? 'no complete run yet: nothing is pruned'
      : keepsNothing(options.policy)
        ? 'the policy keeps nothing (every BACKUP_KEEP_* is 0): nothing is pruned'
        : undefined;

  const safety = parsed
    .filter((p) => p.time !== undefined && p.run.tier === PRE_RESTORE)
    .sort((a, b) => b.time!.getTime() - a.time!.getTime() || b.run.id.localeCompare(a.run.id))
    .map((p) => p.run.id);

  // BACKUP_KEEP_LAST: the N newest complete runs that count (trusted, not dated in the future).
  const last = new Set(
    regular
      .filter((p) => p.run.complete && p.run.untrusted === undefined && !isFutureDated(p.time, options.notAfter))
      .slice(0, options.policy.last ?? 0)
      .map((p) => p.run.id),
  );
  const refPeriods = newest === undefined ? undefined : periodsOf(newest.time, options.timeZone);
  // With BACKUP_KEEP_MINS, the daily tier keeps one run a day: the newest complete, trusted one of each day.
  const newestOfDay = new Set<string>();
  const days = new Set<number>();
  for (const p of regular) {
    if (p.run.tier !== 'daily' || !p.run.complete || p.run.untrusted !== undefined) continue;
    const day = periodsOf(p.time, options.timeZone).day;
    if (!days.has(day)) newestOfDay.add(p.run.id);
    days.add(day);
  }
  return runs.map((run): Decision => {
    const keep = (reason: string): Decision => ({ id: run.id, tier: run.tier, keep: true, reason });
    const remove = (reason: string): Decision => ({ id: run.id, tier: run.tier, keep: false, reason });
    const time = parseRunId(run.id)?.time;
    if (time === undefined) return keep('not a run id of backup-sidecar: never touched');
    if (run.tier === PRE_RESTORE) {
      const rank = safety.indexOf(run.id);
      return rank < options.keepPreRestore
        ? keep(`safety backup: one of the ${options.keepPreRestore} newest`)
        : remove(`safety backup: older than the ${options.keepPreRestore} newest`);
    }
    if (isFutureDated(time, options.notAfter)) {
      return { ...keep(`dated in the future (after ${options.notAfter.toISOString()}): suspicious, kept but never the newest; check the clock and who wrote it`), suspicious: true };
    }
    if (refusal !== undefined) return keep(refusal);
    if (run.pinned !== undefined) return keep(run.pinned);
    const held = options.holds?.get(run.id);
    if (held !== undefined) return keep(held);
    if (run.id === newest!.run.id) return keep('the newest complete run');
    if (time.getTime() > newest!.time.getTime()) return keep(`newer than the newest complete run${run.untrusted === undefined ? '' : ` (${run.untrusted})`}`);
    if (last.has(run.id)) return keep(`one of the ${options.policy.last} newest complete runs (BACKUP_KEEP_LAST)`);
    const ofDay = newestOfDay.has(run.id);
    const inside = window(run.tier, time, newest!.time, refPeriods!, options, ofDay);
    const prefix = `${run.complete ? '' : 'incomplete; '}${run.untrusted === undefined ? '' : `${run.untrusted}; `}`;
    return inside !== undefined ? keep(`${prefix}${inside}`) : remove(`${prefix}${expiredReason(run.tier, options, ofDay)}`);
  });
}
