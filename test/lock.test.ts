import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli, tempDir, until } from './support/cli.ts';

/**
 * The volume lock between processes: a live holder (another process refreshing it, as a running backup,
 * restore or drill does) is waited for up to LOCK_WAIT; a dead one's lock is taken over within seconds.
 */
let work: string;
let env: Record<string, string>;

/**
 * Another process holding the volume lock with a heartbeat; a line on its stdin releases it. Wrapped in an
 * object: an async function returning the child itself would wait for it to exit.
 */
async function holdLock(): Promise<{ holder: ResultPromise }> {
  const script = `import lockfile from 'proper-lockfile';
const dir = ${JSON.stringify(env.BACKUP_DIR)};
const release = await lockfile.lock(dir, { lockfilePath: dir + '/.lock', stale: 10000, update: 2000, realpath: false });
process.stdout.write('locked\\n');
process.stdin.once('data', async () => { await release(); process.exit(0); });`;
  const holder = execa(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdin: 'pipe', reject: false });
  let out = '';
  holder.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await until('the holder to take the lock', async () => (out.includes('locked') ? true : undefined));
  return { holder };
}

/** Starts `backup` and collects its stderr as it comes. */
function startBackup(extra: Record<string, string>): { child: ResultPromise; stderr: () => string } {
  const child = execa(process.execPath, [CLI, 'backup'], { env: { PATH: process.env.PATH!, ...env, ...extra }, extendEnv: false, reject: false });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return { child, stderr: () => err };
}

beforeAll(async () => {
  work = await tempDir('lock');
  await mkdir(join(work, 'media'));
  await writeFile(join(work, 'media/a.txt'), 'a');
  env = { BACKUP_DIR: join(work, 'backups'), MEDIA_PATHS: `media:${join(work, 'media')}` };
  await mkdir(env.BACKUP_DIR!);
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the volume lock', () => {
  it('held by a live process: a backup waits LOCK_WAIT, then fails in one line saying so', async () => {
    const { holder } = await holdLock();
    try {
      const r = await runCli(['backup'], { ...env, LOCK_WAIT: '2s' });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/another backup or restore holds the volume lock: waiting for it \(LOCK_WAIT\)/);
      expect(r.stderr).toMatch(/^backup-sidecar: another backup or restore is running on \S+ \(lock \S+\); waited 2 seconds \(LOCK_WAIT\) for it to finish$/m);
    } finally {
      holder.stdin!.write('release\n');
      await holder;
    }
  });

  it('released while a backup waits: the backup then runs, exit 0', async () => {
    const { holder } = await holdLock();
    const backup = startBackup({ LOCK_WAIT: '1m' });
    await until('the backup to wait for the lock', async () => (backup.stderr().includes('waiting for it (LOCK_WAIT)') ? true : undefined));
    holder.stdin!.write('release\n');
    await holder;
    const r = await backup.child;
    expect(r.exitCode).toBe(0);
  });

  it('left by a process killed with SIGKILL: the next backup takes it over within seconds, with the default LOCK_WAIT', async () => {
    const { holder } = await holdLock();
    holder.kill('SIGKILL');
    await holder;
    const started = Date.now();
    const r = await runCli(['backup'], env);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/waiting for it \(LOCK_WAIT\)/);
    // Staleness is 10 s after the last heartbeat: far from the default LOCK_WAIT of 10 minutes.
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
