import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../src/config/config.ts';
import { formatRunId } from '../src/naming.ts';
import { dropHolds, dropWords, findDrops, openDrops, type DropRun } from '../src/retention/drops.ts';
import { decide } from '../src/retention/policy.ts';
import { statusPage } from '../src/health/page.ts';
import { statusReport, type StatusReport } from '../src/health/report.ts';

const CFG = { warn: 0.5, minRows: 100 };
const day = (n: number) => new Date(Date.UTC(2026, 0, 1 + n, 2));
function run(n: number, size: number, rows: Record<string, number> | undefined = undefined, acknowledged = false, source = 'app'): DropRun {
  return { id: formatRunId(day(n)), time: day(n), acknowledged, artifacts: [{ source, kind: rows === undefined ? 'media' : 'postgres', size, rowCounts: rows }] };
}

describe('size drops (pure)', () => {
  it.each([
    ['a steady size', [1000, 990, 1010], []],
    ['growth', [1000, 5000], []],
    ['exactly half is not below half', [1000, 500], []],
    ['below half, flagged once: the first run after the drop', [1000, 499, 480, 470], [1]],
    ['a drop, back up, a drop again', [1000, 100, 1000, 100], [1, 3]],
    ['from nothing to something', [0, 10], []],
  ] as const)('%s', (_name, sizes, flagged) => {
    const runs = sizes.map((s, i) => run(i, s));
    expect(findDrops(runs, CFG).map((d) => d.runId)).toEqual(flagged.map((i) => runs[i]!.id).reverse());
  });

  it('compares a source with the newest older run that has it, whatever the order given', () => {
    const runs = [run(0, 1000), run(1, 1000, undefined, false, 'other'), run(2, 400)];
    const drops = findDrops([...runs].reverse(), CFG);
    expect(drops).toEqual([expect.objectContaining({ runId: runs[2]!.id, previousRunId: runs[0]!.id, source: 'app', what: 'size', before: 1000, after: 400 })]);
  });

  it('row counts: a table that lost more than the share of its rows, or vanished; small tables are not compared', () => {
    const before = { 'public.orders': 5000, 'public.users': 300, 'public.sessions': 50, 'public.gone': 200 };
    const after = { 'public.orders': 2400, 'public.users': 290, 'public.sessions': 0 };
    const drops = findDrops([run(0, 1000, before), run(1, 990, after)], CFG);
    expect(drops.map((d) => [d.what, d.table, d.before, d.after])).toEqual([
      ['rows', 'public.orders', 5000, 2400],
      ['rows', 'public.gone', 200, 0],
    ]);
    expect(dropWords(drops[0]!)).toBe('row drop of postgres app, table public.orders (5000 → 2400 rows)');
    expect(findDrops([run(0, 1000, before), run(1, 990, after)], { warn: 0.5, minRows: 10 }).map((d) => d.table)).toContain('public.sessions');
  });

  it('SIZE_DROP_WARN 0% turns it off; a higher share flags smaller drops', () => {
    const runs = [run(0, 1000), run(1, 100)];
    expect(findDrops(runs, { warn: 0, minRows: 0 })).toEqual([]);
    expect(findDrops([run(0, 1000), run(1, 850)], { warn: 0.9, minRows: 0 })).toHaveLength(1);
  });

  it('holds the last run before an open drop and the flagged run; an acknowledged drop holds nothing', () => {
    const runs = [run(0, 1000), run(1, 1000), run(2, 100), run(3, 100)];
    const holds = dropHolds(findDrops(runs, CFG));
    expect([...holds.keys()].sort()).toEqual([runs[1]!.id, runs[2]!.id]);
    expect(holds.get(runs[1]!.id)).toBe(`the last run before the size drop of media app (1 kB → 100 B) in ${runs[2]!.id}: kept until \`backup-sidecar ack ${runs[2]!.id}\``);
    const acked = [runs[0]!, runs[1]!, { ...runs[2]!, acknowledged: true }, runs[3]!];
    expect(openDrops(findDrops(acked, CFG))).toEqual([]);
    expect(dropHolds(findDrops(acked, CFG)).size).toBe(0);
  });

  it('property: retention never removes a held run, whatever the policy; without holds the same policy may', () => {
    const policy: RetentionPolicy = { days: 1, weeks: 0, months: 0, years: 0, minutes: undefined };
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: 40 }), (sizes) => {
        const runs = sizes.map((s, i) => run(i, s));
        const holds = dropHolds(findDrops(runs, CFG));
        const decisions = decide(runs.map((r) => ({ id: r.id, tier: 'daily' as const, complete: true })), { policy, keepPreRestore: 0, timeZone: 'UTC', notAfter: day(1000), holds });
        for (const id of holds.keys()) expect(decisions.find((d) => d.id === id)?.keep).toBe(true);
        // Every flagged run is in the holds with its previous run.
        for (const d of findDrops(runs, CFG)) expect(holds.has(d.previousRunId) && holds.has(d.runId)).toBe(true);
      }),
    );
  });
});

describe('status page (pure)', () => {
  const report: StatusReport = statusReport.parse({
    schemaVersion: 1,
    generatedAt: '2026-12-04T12:00:00.000Z',
    version: '0.1.0',
    health: { healthy: false, reason: 'the last backup failed: <script>alert(1)</script>', maxAgeSeconds: 90000 },
    schedule: { cron: '@daily', timeZone: 'UTC', next: '2026-12-05T00:00:00.000Z', intervalSeconds: 86400, drillCron: null, nextDrill: null },
    tiers: [{ tier: 'daily', runs: 1, newest: { runId: '20261204T000000Z', startedAt: '2026-12-04T00:00:00.000Z', ageSeconds: 43200, bytes: 1000 } }],
    runs: [
      { runId: '20261204T000000Z', tier: 'daily', startedAt: '2026-12-04T00:00:00.000Z', finishedAt: '2026-12-04T00:00:01.000Z', status: 'ok', bytes: 1000, artifacts: [{ source: '"><img src=x onerror=alert(1)>', kind: 'media', size: 1000, durationSeconds: 1 }], targets: [], drill: null, inVolume: true, drop: null, error: null },
    ],
    drops: [],
    disk: { freeBytes: 10, minBytes: 100, low: true },
    lastError: { at: '2026-12-04T12:00:00.000Z', message: '<b>boom</b>' },
    lastDrill: null,
    suspicious: [],
    wal: null,
  });

  it('escapes every value from the volume, and loads nothing from elsewhere', () => {
    const html = statusPage(report);
    expect(html).not.toMatch(/<script|<img|<b>boom/);
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).toContain('Backups need attention');
    expect(html).toMatch(/BELOW DISK_FREE_MIN/);
  });
});
