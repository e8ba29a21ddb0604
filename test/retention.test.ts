import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../src/config/config.ts';
import { PRE_RESTORE, TIERS, formatRunId, type RunTier, type Tier } from '../src/naming.ts';
import { periodsOf } from '../src/retention/calendar.ts';
import { decide, type RetentionOptions, type RetentionRun } from '../src/retention/policy.ts';
import { tierFor } from '../src/retention/tiers.ts';

const DEFAULT: RetentionPolicy = { days: 7, weeks: 4, months: 6, years: 0, minutes: undefined };
/** Far ahead of every fixture: nothing is future-dated unless a test says so. */
const LATER = new Date('2100-01-01T00:00:00Z');
const opts = (policy: Partial<RetentionPolicy> = {}, timeZone = 'UTC', notAfter = LATER): RetentionOptions => ({ policy: { ...DEFAULT, ...policy }, keepPreRestore: 3, timeZone, notAfter });
const at = (iso: string) => new Date(iso);

/** Runs made one after the other, each taking the tier tierFor gives it: what the daemon would do. */
function history(times: Date[], timeZone = 'UTC', failed: (i: number) => boolean = () => false): RetentionRun[] {
  const done: Date[] = [];
  return times.map((time, i) => {
    const tier = tierFor(time, done, timeZone);
    const complete = !failed(i);
    if (complete) done.push(time);
    return { id: formatRunId(time), tier, complete };
  });
}

function everyDay(from: string, days: number, hour = 2): Date[] {
  const start = at(from).getTime() + hour * 3_600_000;
  return Array.from({ length: days }, (_, i) => new Date(start + i * 86_400_000));
}

const kept = (runs: RetentionRun[], o: RetentionOptions) => decide(runs, o).filter((d) => d.keep);

describe('tiers', () => {
  it.each([
    ['the first run ever', '2026-06-10T02:00:00Z', [], 'yearly'],
    ['the second run of a day', '2026-06-10T14:00:00Z', ['2026-06-10T02:00:00Z'], 'daily'],
    ['the first of an ISO week', '2026-06-15T02:00:00Z', ['2026-06-14T02:00:00Z'], 'weekly'],
    ['the first of a month', '2026-07-01T02:00:00Z', ['2026-06-30T02:00:00Z'], 'monthly'],
    ['the first of a year', '2027-01-01T02:00:00Z', ['2026-12-31T02:00:00Z'], 'yearly'],
    ['after a gap of months', '2026-09-20T02:00:00Z', ['2026-06-10T02:00:00Z'], 'monthly'],
    ['ISO week 53 spans the new year: Jan 2 2027 is in the week of Dec 31', '2027-01-02T02:00:00Z', ['2026-12-31T02:00:00Z', '2027-01-01T02:00:00Z'], 'daily'],
    ['Monday after week 53', '2027-01-04T02:00:00Z', ['2027-01-01T02:00:00Z', '2027-01-02T02:00:00Z'], 'weekly'],
    ['a later run never counts', '2026-06-10T02:00:00Z', ['2026-06-11T02:00:00Z'], 'yearly'],
  ] as const)('%s → %s', (_what, time, earlier, tier) => {
    expect(tierFor(at(time), earlier.map(at), 'UTC')).toBe(tier);
  });

  it('uses the calendar of TZ', () => {
    // 23:30 UTC on Dec 31 is already the new year in Berlin, not in New York.
    expect(tierFor(at('2026-12-31T23:30:00Z'), [at('2026-12-31T10:00:00Z')], 'Europe/Berlin')).toBe('yearly');
    expect(tierFor(at('2026-12-31T23:30:00Z'), [at('2026-12-31T10:00:00Z')], 'America/New_York')).toBe('daily');
  });

  it('a DST change does not merge or split days', () => {
    // Berlin springs forward on 2026-03-29 and falls back on 2026-10-25: each local day stays one day.
    for (const [a, b] of [
      ['2026-03-28T23:30:00Z', '2026-03-29T22:30:00Z'],
      ['2026-10-24T22:30:00Z', '2026-10-25T23:30:00Z'],
    ] as const) {
      expect(periodsOf(at(b), 'Europe/Berlin').day - periodsOf(at(a), 'Europe/Berlin').day).toBe(1);
    }
  });

  it('a failed run never takes a tier: the next successful one does', () => {
    const runs = history([at('2026-07-01T02:00:00Z'), at('2026-07-01T03:00:00Z')].map((d) => d), 'UTC', (i) => i === 0);
    expect(runs.map((r) => r.tier)).toEqual(['yearly', 'yearly']);
  });

  it('a year of daily runs: 1 yearly, 11 monthly, about 52 weekly (property: one yearly per year)', () => {
    const runs = history(everyDay('2027-01-01T00:00:00Z', 365));
    const count = (t: Tier) => runs.filter((r) => r.tier === t).length;
    expect(count('yearly')).toBe(1);
    expect(count('monthly')).toBe(11);
    expect(count('weekly')).toBeGreaterThanOrEqual(40);
    expect(count('daily')).toBe(365 - 1 - 11 - count('weekly'));
  });
});

describe('retention', () => {
  it('default policy over daily runs keeps 7 days, 4 weeks, 6 months', () => {
    const runs = history(everyDay('2026-01-01T00:00:00Z', 400));
    const decisions = decide(runs, opts());
    const keep = decisions.filter((d) => d.keep);
    const byTier = (t: RunTier) => keep.filter((d) => d.tier === t).length;
    // The newest 7 days, plus weekly/monthly/yearly runs inside their windows.
    expect(keep.slice(-7).every((d) => d.keep)).toBe(true);
    expect(byTier('daily')).toBeLessThanOrEqual(7);
    expect(byTier('weekly')).toBeLessThanOrEqual(4);
    expect(byTier('monthly') + byTier('yearly')).toBeLessThanOrEqual(6);
    expect(keep.length).toBeGreaterThanOrEqual(14);
    expect(decisions.find((d) => d.id === formatRunId(at('2026-01-01T02:00:00Z')))).toMatchObject({ tier: 'yearly', keep: false, reason: 'yearly: older than 0 years before the newest run' });
  });

  it('counts age from the newest complete run, so a failing job never ages out its history', () => {
    const runs = history(everyDay('2026-01-01T00:00:00Z', 30));
    const now = kept(runs, opts({ weeks: 0, months: 0 })).length;
    // Weeks of failed runs afterwards change nothing.
    const failing = history(everyDay('2026-01-01T00:00:00Z', 90), 'UTC', (i) => i >= 30);
    expect(kept(failing, opts({ weeks: 0, months: 0 })).filter((d) => runs.some((r) => r.id === d.id)).length).toBe(now);
  });

  it('keeps a higher tier at least as long as a lower one', () => {
    const runs: RetentionRun[] = [
      { id: '20260601T020000Z', tier: 'monthly', complete: true },
      { id: '20260625T020000Z', tier: 'daily', complete: true },
    ];
    // Only days are kept: the monthly run counts as a daily one.
    expect(decide(runs, opts({ days: 30, weeks: 0, months: 0 }))[0]).toMatchObject({ keep: true, reason: 'daily: within 30 days of the newest run' });
    expect(decide(runs, opts({ days: 2, weeks: 0, months: 0 }))[0]).toMatchObject({ keep: false });
  });

  it("BACKUP_KEEP_MINS has docker-postgres-backup-local's meaning: every run that young is kept, older ones one a day for BACKUP_KEEP_DAYS", () => {
    // Hourly runs for 10 days; the first of each day is daily too (there is no higher tier after the first).
    const runs: RetentionRun[] = [];
    for (let h = 0; h < 240; h++) runs.push({ id: formatRunId(new Date(Date.UTC(2026, 5, 1, h))), tier: h === 0 ? 'yearly' : 'daily', complete: true });
    const d = decide(runs, opts({ minutes: 1440, days: 7, weeks: 0, months: 0, years: -1 }));
    const kept = d.filter((x) => x.keep).map((x) => x.id);
    // The last 24 hours: all 24 (and the one exactly 24 h old is outside)...
    for (let h = 216; h < 240; h++) expect(kept).toContain(formatRunId(new Date(Date.UTC(2026, 5, 1, h))));
    // ... and before that, within 7 days, only the newest of each day (23:00).
    expect(kept).toContain('20260609T230000Z');
    expect(kept).toContain('20260604T230000Z');
    expect(kept).not.toContain('20260609T220000Z');
    expect(kept).not.toContain('20260603T230000Z');
    expect(d.find((x) => x.id === '20260609T220000Z')?.reason).toMatch(/not the newest of its day \(BACKUP_KEEP_MINS keeps one a day\)/);
    expect(d.find((x) => x.id === '20260610T120000Z')?.reason).toBe('within 1440 minutes of the newest run (BACKUP_KEEP_MINS)');
    expect(kept).toContain('20260601T000000Z'); // yearly, forever
    expect(kept.length).toBe(24 + 6 + 1);
  });

  it('-1 keeps a tier forever; BACKUP_KEEP_MINS keeps young runs beside the daily window', () => {
    const runs = history(everyDay('2023-01-01T00:00:00Z', 1100));
    const forever = decide(runs, opts({ years: -1 })).filter((d) => d.tier === 'yearly');
    expect(forever.every((d) => d.keep && d.reason === 'yearly: kept forever')).toBe(true);
    const frequent: RetentionRun[] = [0, 20, 40, 60, 61].map((m) => ({ id: formatRunId(new Date(Date.UTC(2026, 5, 10, 10, m))), tier: 'daily', complete: true }));
    frequent.unshift({ id: '20260610T000000Z', tier: 'yearly', complete: true });
    expect(decide(frequent, opts({ minutes: 30 })).map((d) => d.keep)).toEqual([true, false, false, true, true, true]);
  });

  it('BACKUP_KEEP_LAST: the N newest complete, trusted runs are kept whatever their age or tier; alone it is a policy', () => {
    const runs = history(everyDay('2026-01-01T00:00:00Z', 60));
    const plain = kept(runs, opts({ days: 2, weeks: 0, months: 0 })).map((d) => d.id);
    const withLast = decide(runs, opts({ days: 2, weeks: 0, months: 0, last: 10 }));
    const newestTen = [...runs].sort((a, b) => b.id.localeCompare(a.id)).slice(0, 10).map((r) => r.id);
    for (const id of newestTen) expect(withLast.find((d) => d.id === id)?.keep).toBe(true);
    expect(withLast.filter((d) => d.keep).length).toBe(new Set([...plain, ...newestTen]).size);
    expect(withLast.find((d) => d.id === newestTen[9])?.reason).toBe('one of the 10 newest complete runs (BACKUP_KEEP_LAST)');
    // Every window 0 but KEEP_LAST: not a policy that keeps nothing.
    const onlyLast = decide(runs, opts({ days: 0, weeks: 0, months: 0, years: 0, last: 3 }));
    expect(onlyLast.filter((d) => d.keep).map((d) => d.id).sort()).toEqual(newestTen.slice(0, 3).sort());
    // Incomplete and untrusted runs never take a KEEP_LAST place.
    const doubtful: RetentionRun[] = [{ id: '20260301T000000Z', tier: 'daily', complete: false }, { id: '20260302T000000Z', tier: 'daily', complete: true, untrusted: 'unsigned' }];
    const mixed = decide([...runs, ...doubtful], opts({ days: 0, weeks: 0, months: 0, years: 0, last: 2 }));
    expect(mixed.filter((d) => d.keep && d.reason.includes('BACKUP_KEEP_LAST')).map((d) => d.id)).toEqual(newestTen.slice(0, 2).filter((id) => id !== newestTen[0]));
  });

  it('property: a larger BACKUP_KEEP_LAST never removes a run a smaller one keeps', () => {
    fc.assert(
      fc.property(runsArb, policyArb, fc.nat(20), (runs, policy, n) => {
        const small = new Set(kept(runs, opts({ ...policy, last: n })).map((d) => d.id));
        const large = new Set(kept(runs, opts({ ...policy, last: n + 1 })).map((d) => d.id));
        for (const id of small) expect(large.has(id)).toBe(true);
      }),
    );
  });

  it('several runs in one minute, incomplete runs, and safety backups', () => {
    const runs: RetentionRun[] = [
      { id: '20260610T020000Z', tier: 'yearly', complete: true },
      { id: '20260620T020000Z', tier: 'daily', complete: true },
      { id: '20260620T020001Z', tier: 'daily', complete: true },
      { id: '20260620T020059Z_v2', tier: 'daily', complete: true },
      { id: '20260621T020000Z', tier: 'daily', complete: false },
      ...Array.from({ length: 5 }, (_, i) => ({ id: `2026061${i}T120000Z`, tier: PRE_RESTORE as RunTier, complete: true })),
    ];
    const d = decide(runs, opts({ days: 1, weeks: 0, months: 0 }));
    expect(d.map((x) => [x.id, x.keep, x.reason])).toEqual([
      ['20260610T020000Z', false, 'yearly: older than 0 years before the newest run'],
      ['20260620T020000Z', true, 'daily: within 1 day of the newest run'],
      ['20260620T020001Z', true, 'daily: within 1 day of the newest run'],
      ['20260620T020059Z_v2', true, 'the newest complete run'],
      ['20260621T020000Z', true, 'newer than the newest complete run'],
      ['20260610T120000Z', false, 'safety backup: older than the 3 newest'],
      ['20260611T120000Z', false, 'safety backup: older than the 3 newest'],
      ['20260612T120000Z', true, 'safety backup: one of the 3 newest'],
      ['20260613T120000Z', true, 'safety backup: one of the 3 newest'],
      ['20260614T120000Z', true, 'safety backup: one of the 3 newest'],
    ]);
  });

  it('refuses to prune when nothing is complete or the policy keeps nothing; keeps pinned runs', () => {
    const runs = history(everyDay('2026-01-01T00:00:00Z', 60));
    expect(decide(runs, opts({ days: 0, weeks: 0, months: 0, years: 0 })).every((d) => d.keep && /keeps nothing/.test(d.reason))).toBe(true);
    const incomplete = runs.map((r) => ({ ...r, complete: false }));
    expect(decide(incomplete, opts()).every((d) => d.keep && d.reason === 'no complete run yet: nothing is pruned')).toBe(true);
    const pinned = runs.map((r, i) => (i === 0 ? { ...r, pinned: 'not yet in s3://b' } : r));
    expect(decide(pinned, opts({ days: 1, weeks: 0, months: 0 }))[0]).toMatchObject({ keep: true, reason: 'not yet in s3://b' });
  });

  const policyArb = fc.record({
    days: fc.integer({ min: -1, max: 40 }),
    weeks: fc.integer({ min: -1, max: 10 }),
    months: fc.integer({ min: -1, max: 14 }),
    years: fc.integer({ min: -1, max: 3 }),
    minutes: fc.option(fc.integer({ min: 1, max: 5000 }), { nil: undefined }),
  });
  const runsArb = fc
    .array(
      fc.record({
        time: fc.date({ min: new Date('2024-01-01'), max: new Date('2028-12-31'), noInvalidDate: true }),
        complete: fc.boolean(),
        safety: fc.boolean(),
      }),
      { maxLength: 120 },
    )
    .map((xs) => {
      const sorted = xs.sort((a, b) => a.time.getTime() - b.time.getTime());
      const regular = history(sorted.filter((x) => !x.safety).map((x) => x.time), 'UTC', (i) => !sorted.filter((x) => !x.safety)[i]!.complete);
      const safety = sorted.filter((x) => x.safety).map((x) => ({ id: formatRunId(x.time), tier: PRE_RESTORE as RunTier, complete: true }));
      return [...regular, ...safety];
    });
  const foreignArb = fc.array(fc.constantFrom('notes.txt', 'lost+found', '2026-01-01', '20261301T000000Z', 'x20260101T000000Z'), { maxLength: 3 });

  it('properties: keep + remove = all; the newest complete run is kept; foreign names are never removed', () => {
    fc.assert(
      fc.property(runsArb, foreignArb, policyArb, fc.constantFrom('UTC', 'Europe/Berlin', 'Pacific/Kiritimati'), (runs, foreign, policy, tz) => {
        const all = [...runs, ...foreign.map((id) => ({ id, tier: TIERS[0] as RunTier, complete: true }))];
        const d = decide(all, opts(policy, tz));
        expect(d.map((x) => x.id)).toEqual(all.map((r) => r.id));
        for (const id of foreign) expect(d.find((x) => x.id === id)?.keep).toBe(true);
        const newest = runs.filter((r) => r.complete && r.tier !== PRE_RESTORE).sort((a, b) => b.id.localeCompare(a.id))[0];
        if (newest !== undefined) expect(d.find((x) => x.id === newest.id)?.keep).toBe(true);
        for (const x of d) expect(x.reason.length).toBeGreaterThan(0);
      }),
    );
  });

  it('property: a longer policy never removes a run a shorter one keeps', () => {
    fc.assert(
      fc.property(runsArb, policyArb, fc.constantFrom<'days' | 'weeks' | 'months' | 'years'>('days', 'weeks', 'months', 'years'), (runs, policy, field) => {
        const longer = { ...policy, [field]: policy[field] === -1 ? -1 : (policy[field] as number) + 1 };
        const shortKeeps = new Set(kept(runs, opts(policy)).map((d) => d.id));
        const longKeeps = new Set(kept(runs, opts(longer)).map((d) => d.id));
        for (const id of shortKeeps) expect(longKeeps.has(id)).toBe(true);
      }),
    );
  });
});

describe('runs that cannot be trusted never count as the newest', () => {
  const genuine = history(everyDay('2026-11-01T00:00:00Z', 20));
  const now = at('2026-11-20T12:00:00Z');
  const notAfter = new Date(now.getTime() + 5 * 60_000);

  it('a run dated in 2099 (forged, or a clock that jumped) is kept, reported, and deletes nothing', () => {
    const forged = { id: '20990101T000000Z', tier: 'yearly' as RunTier, complete: true };
    const d = decide([...genuine, forged], opts({ days: 7, weeks: 0, months: 0 }, 'UTC', notAfter));
    expect(d.find((x) => x.id === forged.id)).toMatchObject({ keep: true, reason: expect.stringMatching(/^dated in the future \(after 2026-11-20T12:05:00.000Z\): suspicious/) });
    // Exactly what the same policy keeps without it: the forged run changes nothing.
    expect(d.filter((x) => x.id !== forged.id)).toEqual(decide(genuine, opts({ days: 7, weeks: 0, months: 0 }, 'UTC', notAfter)));
    expect(d.find((x) => x.id === genuine.at(-1)!.id)).toMatchObject({ keep: true, reason: 'the newest complete run' });
  });

  it('a run within CLOCK_SKEW_MAX of now is not future-dated; one a second later is', () => {
    const within = { id: formatRunId(new Date(notAfter.getTime())), tier: 'daily' as RunTier, complete: true };
    const beyond = { id: formatRunId(new Date(notAfter.getTime() + 1000)), tier: 'daily' as RunTier, complete: true };
    expect(decide([...genuine, within], opts({}, 'UTC', notAfter)).find((x) => x.id === within.id)?.reason).toBe('the newest complete run');
    expect(decide([...genuine, beyond], opts({}, 'UTC', notAfter)).find((x) => x.id === beyond.id)?.reason).toMatch(/^dated in the future/);
  });

  it('an untrusted run (unsigned, with a signing key) is not the newest, and is removed when its own age says so', () => {
    const last = genuine.at(-1)!;
    const unsignedNew = { id: formatRunId(at('2026-11-20T10:00:00Z')), tier: 'daily' as RunTier, complete: true, untrusted: 'unsigned' };
    const unsignedOld = { ...genuine[3]!, untrusted: 'unsigned' };
    expect(unsignedOld.tier).toBe('daily');
    const d = decide([...genuine.filter((r) => r.id !== unsignedOld.id), unsignedOld, unsignedNew], opts({ days: 7, weeks: 0, months: 0 }, 'UTC', notAfter));
    expect(d.find((x) => x.id === last.id)?.reason).toBe('the newest complete run');
    expect(d.find((x) => x.id === unsignedNew.id)).toMatchObject({ keep: true, reason: 'newer than the newest complete run (unsigned)' });
    expect(d.find((x) => x.id === unsignedOld.id)).toMatchObject({ keep: false, reason: expect.stringMatching(/^unsigned; daily: older than 7 days/) });
    // Only untrusted runs: nothing is pruned at all.
    expect(decide([unsignedOld, unsignedNew], opts({}, 'UTC', notAfter)).every((x) => x.keep)).toBe(true);
  });

  it('property: adding future-dated or untrusted runs never removes a run that was kept without them', () => {
    const extra = fc.array(
      fc.record({ time: fc.date({ min: new Date('2024-01-01'), max: new Date('2100-12-31'), noInvalidDate: true }), tier: fc.constantFrom(...TIERS), untrusted: fc.boolean() }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(extra, fc.integer({ min: 1, max: 60 }), (added, days) => {
        const base = history(everyDay('2026-10-01T00:00:00Z', days));
        const forged = added
          .map((x) => ({ id: formatRunId(x.time), tier: x.tier as RunTier, complete: true, ...(x.untrusted || x.time > notAfter ? { untrusted: 'unsigned' } : {}) }))
          .filter((x) => x.untrusted !== undefined && !base.some((b) => b.id === x.id));
        const before = new Set(kept(base, opts({}, 'UTC', notAfter)).map((d) => d.id));
        const after = new Set(kept([...base, ...forged], opts({}, 'UTC', notAfter)).map((d) => d.id));
        for (const id of before) expect(after.has(id)).toBe(true);
      }),
    );
  });
});

describe('series', () => {
  it('dumps and base backups are each kept by their own newest run: daily dumps never age out the weekly base backup', () => {
    const policy = { days: 2, weeks: 0, months: 0, years: 0 };
    const dumps = everyDay('2026-06-01', 10).map((t) => ({ id: formatRunId(t), tier: 'daily' as const, complete: true, series: 'dumps' }));
    const bases = [at('2026-06-01T04:00:00Z'), at('2026-06-08T04:00:00Z')].map((t) => ({ id: formatRunId(t), tier: 'weekly' as const, complete: true, series: 'basebackup' }));
    const decisions = decide([...dumps, ...bases], opts(policy));
    const keptIds = decisions.filter((d) => d.keep).map((d) => d.id);
    expect(keptIds).toContain(bases[1]!.id);
    expect(decisions.find((d) => d.id === bases[1]!.id)?.reason).toBe('the newest complete run');
    expect(keptIds).not.toContain(bases[0]!.id);
    expect(keptIds.filter((id) => dumps.some((d) => d.id === id))).toEqual(dumps.slice(-2).map((d) => d.id));
    // Alone, the same runs decide as before: the order of the answer is the order given.
    expect(decisions.map((d) => d.id)).toEqual([...dumps, ...bases].map((r) => r.id));
  });
});
