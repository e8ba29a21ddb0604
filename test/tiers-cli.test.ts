import { createServer } from 'node:http';
import { once } from 'node:events';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMaxAge } from '../src/health/health.ts';
import { recordDaemonStart } from '../src/volume/status.ts';
import { runCli, tempDir } from './support/cli.ts';

let work: string;
let env: Record<string, string>;

async function runs(): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) for (const id of await readdir(join(env.BACKUP_DIR!, tier)).catch(() => [])) out.push(`${tier}/${id}`);
  return out.sort((a, b) => a.split('/')[1]!.localeCompare(b.split('/')[1]!));
}

beforeAll(async () => {
  work = await tempDir('tiers');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/a.txt'), 'a');
  env = { MEDIA_PATHS: `media:${join(work, 'media')}`, BACKUP_DIR: join(work, 'backups'), TZ: 'Europe/Berlin', BACKUP_KEEP_DAYS: '2', BACKUP_KEEP_WEEKS: '1', BACKUP_KEEP_MONTHS: '1', BACKUP_KEEP_YEARS: '0' };
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('tiers and retention over simulated weeks (BACKUP_FAKE_NOW)', () => {
  it('files each run in its tier and prunes each tier after every successful run', async () => {
    const at = async (iso: string, extra: Record<string, string> = {}) => {
      const r = await runCli(['backup'], { ...env, BACKUP_FAKE_NOW: iso, ...extra });
      return r;
    };
    // Sunday Dec 27 2026 (ISO week 52), then week 53 across the new year, then January.
    for (const day of ['2026-12-27', '2026-12-28', '2026-12-29', '2026-12-31', '2027-01-01', '2027-01-02', '2027-01-04', '2027-01-05']) {
      const r = await at(`${day}T01:30:00Z`);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    // Dec 27 was 2026's yearly run, Dec 28 the weekly of ISO week 53, Jan 1 2027's yearly, Jan 4 the
    // weekly of week 1. With 2 days, 1 week and 1 month counted back from Jan 5, what is left:
    expect(await runs()).toEqual(['yearly/20270101T013000Z', 'weekly/20270104T013000Z', 'daily/20270105T013000Z']);
  });

  it('a failing run prunes nothing and takes no tier; the next successful one does', async () => {
    const before = await runs();
    const failed = await runCli(['backup'], { ...env, BACKUP_FAKE_NOW: '2027-02-01T01:30:00Z', MEDIA_PATHS: 'gone:/nonexistent/media' });
    expect(failed.exitCode).toBe(1);
    expect(await runs()).toEqual(before);
    const next = await runCli(['backup'], { ...env, BACKUP_FAKE_NOW: '2027-02-02T01:30:00Z' });
    expect(next.exitCode).toBe(0);
    expect(next.stdout).toMatch(/\/monthly\/20270202T013000Z /);
    expect(await runs()).toEqual(['monthly/20270202T013000Z']);
  });

  it('prune --dry-run explains every run and changes nothing', async () => {
    await runCli(['backup', '--tier', 'daily'], { ...env, BACKUP_FAKE_NOW: '2027-02-02T09:00:00Z' });
    const before = await runs();
    // In the simulated time: seen from the real clock, these runs lie in the future and are never pruned.
    const later = { ...env, BACKUP_FAKE_NOW: '2027-02-02T09:05:00Z' };
    const dry = await runCli(['prune', '--dry-run'], { ...later, BACKUP_KEEP_MINS: '60', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0' });
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/^volume\s+daily\s+20270202T090000Z\s+keep\s+the newest complete run$/m);
    expect(dry.stdout).toMatch(/^volume\s+monthly\s+20270202T013000Z\s+would remove\s+monthly: older than 0 months before the newest run$/m);
    const nothing = await runCli(['prune', '--dry-run'], { ...later, BACKUP_KEEP_DAYS: '0', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0' });
    expect(nothing.stdout).toMatch(/^volume\s+monthly\s+20270202T013000Z\s+keep\s+the policy keeps nothing/m);
    expect(await runs()).toEqual(before);
  });

  it('hooks: a failing BACKUP_PRE_COMMAND fails the run; a failing webhook is logged and never fails it', async () => {
    const pre = await runCli(['backup'], { ...env, BACKUP_PRE_COMMAND: 'echo exporting; exit 3' });
    expect(pre.exitCode).toBe(1);
    expect(pre.stderr).toMatch(/^backup-sidecar: BACKUP_PRE_COMMAND failed \(exit 3\): exporting$/m);
    const server = createServer((_req, res) => res.writeHead(500).end()).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook?token=s3cr3t-token`;
      const ok = await runCli(['backup'], { ...env, WEBHOOK_URL: url, WEBHOOK_ERROR_URL: 'http://127.0.0.1:1/unreachable' });
      expect(ok.exitCode).toBe(0);
      // A 5xx is tried again (1 s, 2 s), then logged.
      expect(ok.stderr).toMatch(/"webhook":"WEBHOOK_URL","err":"HTTP 500","attempts":3,"msg":"webhook failed"/);
      expect(ok.stderr).not.toContain('s3cr3t-token');
      const post = await runCli(['backup'], { ...env, BACKUP_POST_COMMAND: 'echo "status=$BACKUP_STATUS"; exit 1' });
      expect(post.exitCode).toBe(1);
      expect(post.stderr).toMatch(/backup-sidecar: BACKUP_POST_COMMAND failed \(exit 1\): status=ok/);
    } finally {
      server.close();
    }
  });

  it('status reports tiers, sizes and free space, and warns below DISK_FREE_MIN', async () => {
    const r = await runCli(['status'], { ...env, DISK_FREE_MIN: '1000TiB', HEALTHCHECK_MAX_AGE: '100000d' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^TIER\s+RUNS\s+NEWEST\s+AGE\s+SIZE$/m);
    expect(r.stdout).toMatch(/^free space: .*WARNING, below DISK_FREE_MIN/m);
    expect(r.stdout).toMatch(/^schedule: @daily \(Europe\/Berlin\), next at /m);
  });
});

describe('run ids', () => {
  it('two runs started in the same second get different ids even in different tiers, so a run id names one run', async () => {
    const local = { ...env, BACKUP_DIR: join(work, 'same-second'), BACKUP_FAKE_NOW: '2026-06-10T10:00:00Z' };
    expect((await runCli(['backup', '--tier', 'yearly'], local)).exitCode).toBe(0);
    expect((await runCli(['backup', '--tier', 'daily'], local)).exitCode).toBe(0);
    const yearly = await readdir(join(local.BACKUP_DIR, 'yearly'));
    const daily = await readdir(join(local.BACKUP_DIR, 'daily'));
    expect(yearly).toEqual(['20260610T100000Z']);
    expect(daily).toHaveLength(1);
    expect(daily[0]).not.toBe(yearly[0]);
  });
});

describe('healthcheck defaults', () => {
  it.each([
    ['@daily', 49],
    ['0 */6 * * *', 13],
    ['*/10 * * * * *', 1 + 20 / 3600],
  ])('%s → two intervals plus an hour', (schedule, hours) => {
    expect(defaultMaxAge(schedule, 'UTC', new Date('2026-06-10T12:00:00Z')) / 3_600_000).toBeCloseTo(hours, 5);
  });

  it('before the first run, a started daemon is healthy until that run is overdue', async () => {
    const dir = join(work, 'fresh');
    const at = (iso: string) => ({ MEDIA_PATHS: env.MEDIA_PATHS!, BACKUP_DIR: dir, SCHEDULE: '@daily', TZ: 'UTC', BACKUP_FAKE_NOW: iso });
    const noDaemon = await runCli(['healthcheck'], at('2026-06-10T13:00:00Z'));
    expect(noDaemon.exitCode).toBe(1);
    expect(noDaemon.stdout + noDaemon.stderr).toContain('no successful backup');
    await recordDaemonStart(dir, new Date('2026-06-10T12:00:00Z'));
    const fresh = await runCli(['healthcheck'], at('2026-06-10T13:00:00Z'));
    expect(fresh.exitCode).toBe(0);
    expect(fresh.stdout + fresh.stderr).toContain('no backup yet; the daemon started 1 hour ago');
    const overdue = await runCli(['healthcheck'], at('2026-06-12T14:00:00Z'));
    expect(overdue.exitCode).toBe(1);
    expect(overdue.stdout + overdue.stderr).toContain('no successful backup');
  });
});
