import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../src/config/config.ts';
import { PRE_RESTORE, formatRunId, type RunTier } from '../src/naming.ts';
import { decide, type RetentionRun } from '../src/retention/policy.ts';
import { tierFor } from '../src/retention/tiers.ts';

const TZ = 'Europe/Berlin';

/**
 * A fixture of a few hundred runs full of edge cases, made the way the daemon makes them (each run's
 * tier from the ones before it): a nightly run at 01:30 Berlin time from 2026-01-01 to 2027-02-10,
 * across both DST changes, ISO week 53 (2026-12-28 to 2027-01-03) and a year boundary, with several
 * runs in one minute, an evening run now and then, a gap of two months without runs, failed runs (which
 * take no tier and stay incomplete), safety backups and names that are not ours.
 */
function fixture(): RetentionRun[] {
  const times: { time: Date; failed: boolean }[] = [];
  const day = 86_400_000;
  for (let t = Date.UTC(2026, 0, 1, 0, 30); t <= Date.UTC(2027, 1, 10, 0, 30); t += day) {
    const date = new Date(t);
    // A gap: the job was broken from May 10 to July 9.
    if (date >= new Date('2026-05-10') && date < new Date('2026-07-10')) continue;
    // Failing for a week in September.
    times.push({ time: date, failed: date >= new Date('2026-09-14') && date < new Date('2026-09-21') });
    if (date.getUTCDate() === 15) times.push({ time: new Date(t + 18 * 3_600_000), failed: false });
  }
  // Several runs in one minute (a deploy hook and the schedule at once).
  for (const s of [5, 17, 42]) times.push({ time: new Date(Date.UTC(2027, 1, 3, 12, 0, s)), failed: false });
  times.sort((a, b) => a.time.getTime() - b.time.getTime());
  const done: Date[] = [];
  const runs: RetentionRun[] = times.map(({ time, failed }) => {
    const tier = tierFor(time, done, TZ);
    if (!failed) done.push(time);
    return { id: formatRunId(time), tier, complete: !failed };
  });
  for (const d of ['2026-03-01T10:00:00Z', '2026-11-02T10:00:00Z', '2027-01-20T10:00:00Z', '2027-02-01T10:00:00Z', '2027-02-09T10:00:00Z']) {
    runs.push({ id: formatRunId(new Date(d)), tier: PRE_RESTORE as RunTier, complete: true });
  }
  for (const id of ['lost+found', 'notes.txt', '20261301T000000Z']) runs.push({ id, tier: 'daily', complete: true });
  return runs;
}

const policies: Record<string, RetentionPolicy> = {
  default: { days: 7, weeks: 4, months: 6, years: 0, minutes: undefined },
  'days-only': { days: 30, weeks: 0, months: 0, years: 0, minutes: undefined },
  'long-term': { days: 14, weeks: 8, months: 12, years: -1, minutes: undefined },
  'frequent-minutes': { days: 7, weeks: 2, months: 2, years: 1, minutes: 3 * 24 * 60 },
  'keeps-nothing': { days: 0, weeks: 0, months: 0, years: 0, minutes: undefined },
};

describe('retention over a fixture of edge cases (golden files)', () => {
  const runs = fixture();

  it('the fixture has what it claims', () => {
    expect(runs.length).toBeGreaterThan(300);
    const tiers = (t: RunTier) => runs.filter((r) => r.tier === t).map((r) => r.id.slice(0, 8));
    expect(tiers('yearly')).toEqual(['20260101', '20270101']);
    // The first successful run after the gap and after the failing week took the tiers the missing runs never got.
    expect(tiers('monthly')).toContain('20260710');
    expect(runs.filter((r) => !r.complete).length).toBe(7);
  });

  it.each(Object.keys(policies))('%s', async (name) => {
    const decisions = decide(runs, { policy: policies[name]!, keepPreRestore: 3, timeZone: TZ, notAfter: new Date('2100-01-01T00:00:00Z') });
    // Invariants first, then the exact answer.
    expect(decisions).toHaveLength(runs.length);
    expect(decisions.find((d) => d.id === '20270210T003000Z')?.keep).toBe(true);
    for (const id of ['lost+found', 'notes.txt', '20261301T000000Z']) expect(decisions.find((d) => d.id === id)?.keep).toBe(true);
    const text = decisions.map((d) => `${d.keep ? 'keep  ' : 'remove'} ${d.tier.padEnd(11)} ${d.id.padEnd(18)} ${d.reason}`).join('\n');
    await expect(`${text}\n`).toMatchFileSnapshot(`./golden/retention-${name}.txt`);
  });
});
