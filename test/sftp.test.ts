import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/manifest.ts';
import { execa } from 'execa';
import { CLI, filesBelow, readJson, runCli, tempDir, until } from './support/cli.ts';
import { freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';
import { startCutProxy, startSftp, type TestSftp } from './support/sftp-server.ts';

/**
 * SFTP as a remote target, against a real OpenSSH server the test starts (sshd, internal-sftp), beside the
 * S3 test server: both receive every run.
 */
let pg: TestServer;
let s3: TestS3;
let sftp: TestSftp;
let work: string;
let env: Record<string, string>;
const MIB = 1024 * 1024;

const runs = async (dir: string) => (await filesBelow(dir)).filter((f) => f.endsWith('/manifest.json')).map((f) => f.slice(0, -'/manifest.json'.length));
const manifestOf = (dir: string, run: string) => readJson<Manifest>(join(dir, run, 'manifest.json'));

beforeAll(async () => {
  [pg, s3, sftp] = await Promise.all([startPostgres(), startS3(), startSftp()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, md5(i::text) FROM generate_series(1, 3000) i;');
  work = await tempDir('sftp-test');
  await mkdir(join(work, 'uploads'));
  await writeFile(join(work, 'uploads/big.bin'), randomBytes(3 * MIB));
  env = { ...pg.env, ...sftp.env, POSTGRES_DB: 'app', MEDIA_PATHS: `uploads:${join(work, 'uploads')}`, BACKUP_DIR: join(work, 'backups') };
});

afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop(), sftp?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('SFTP as a remote target', () => {
  it('streams every run to SFTP and S3 at once: byte-identical files, no .partial left, both marked complete', async () => {
    const local: Record<string, string> = { ...env, ...s3.env, S3_PREFIX: 'both', SFTP_PATH: join(sftp.dir, 'both') };
    const r = await runCli(['backup'], local);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    const [run] = await runs(local.BACKUP_DIR!);
    const manifest = await manifestOf(local.BACKUP_DIR!, run!);
    expect(manifest.targets.map((t) => [t.url, t.state])).toEqual([
      [`s3://${s3.bucket}/both`, 'complete'],
      [`sftp://127.0.0.1:${sftp.port}${join(sftp.dir, 'both')}`, 'complete'],
    ]);
    expect(manifest.offsite?.state).toBe('complete');
    for (const a of manifest.artifacts) {
      expect(await readFile(join(sftp.dir, 'both', run!, a.file))).toEqual(await readFile(join(local.BACKUP_DIR!, run!, a.file)));
    }
    const copy = JSON.parse(await readFile(join(sftp.dir, 'both', run!, 'manifest.json'), 'utf8')) as Manifest;
    expect(copy.artifacts).toEqual(manifest.artifacts);
    expect((await filesBelow(join(sftp.dir, 'both'))).filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect((await s3.keys()).filter((k) => k.startsWith(`both/${run}/`))).toHaveLength(manifest.artifacts.length + 1);
    const listed = await runCli(['list', '--remote'], local);
    expect(listed.stdout).toContain(`sftp://127.0.0.1:${sftp.port}`);
    expect(listed.stdout).toContain(`s3://${s3.bucket}/both`);
  });

  it('restores a run that exists only on SFTP (the volume lost), by run id and by sftp:// URL', async () => {
    const local = { ...env, SFTP_PATH: join(sftp.dir, 'only'), BACKUP_DIR: join(work, 'only') };
    expect((await runCli(['backup'], local)).exitCode).toBe(0);
    const [run] = await runs(local.BACKUP_DIR!);
    await rm(local.BACKUP_DIR!, { recursive: true });
    await pg.sql('app', 'DELETE FROM notes WHERE id > 10;');
    const byId = await runCli(['restore', run!.split('/')[1]!, '--yes', '--no-safety-backup'], local);
    expect(byId.stderr).not.toMatch(/"level":50/);
    expect(byId.exitCode).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('3000');
    await rm(local.BACKUP_DIR!, { recursive: true, force: true });
    await pg.sql('app', 'DELETE FROM notes WHERE id > 10;');
    const url = `sftp://127.0.0.1:${sftp.port}${join(sftp.dir, 'only')}/${run}/app.dump.zst`;
    const byUrl = await runCli(['restore', url, '--yes', '--no-safety-backup'], local);
    expect(byUrl.stderr).not.toMatch(/"level":50/);
    expect(byUrl.exitCode).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('3000');
    const wrongHost = await runCli(['restore', `sftp://elsewhere:22/x/daily/${run!.split('/')[1]}`, '--yes'], local);
    expect(wrongHost.exitCode).toBe(2);
    expect(wrongHost.stderr).toMatch(/is not on the configured SFTP server/);
  });

  it('a wrong host key is refused before anything is sent: the local run is kept and marked, exit 1', async () => {
    const local = { ...env, SFTP_PATH: join(sftp.dir, 'impostor'), SFTP_HOST_KEY: sftp.otherHostKeyLine, BACKUP_DIR: join(work, 'impostor') };
    const r = await runCli(['backup'], local);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/the server's host key does not match SFTP_HOST_KEY; refused before anything was sent/);
    const [run] = await runs(local.BACKUP_DIR!);
    expect((await manifestOf(local.BACKUP_DIR!, run!)).offsite?.state).toBe('failed');
    expect(await readdir(join(sftp.dir, 'impostor')).catch(() => 'absent')).toBe('absent');
  });

  it('server down: the local run is kept and marked, exit 1; the next run uploads both', async () => {
    const local = { ...env, SFTP_PATH: join(sftp.dir, 'down'), BACKUP_DIR: join(work, 'down') };
    await sftp.down();
    try {
      const r = await runCli(['backup'], local);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/cannot reach the server \(ECONNREFUSED\): check SFTP_HOST and SFTP_PORT/);
      expect((await runCli(['healthcheck'], local)).exitCode).toBe(1);
      expect((await runCli(['status'], local)).stdout).toMatch(new RegExp(`not in sftp://127.0.0.1:${sftp.port}\\S* yet: 1 run\\(s\\)`));
      // /metrics says which target misses how many runs.
      const port = await freePort();
      const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH!, ...local, SCHEDULE: '0 0 1 1 *', HEALTHCHECK_PORT: String(port) }, extendEnv: false, reject: false });
      try {
        const metrics = await until('/metrics', () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => undefined));
        expect(metrics).toContain(`backup_sidecar_target_runs_missing{target="sftp://127.0.0.1:${sftp.port}${join(sftp.dir, 'down')}"} 1`);
        expect(metrics).toContain(`backup_sidecar_target_newest_run_complete{target="sftp://127.0.0.1:${sftp.port}${join(sftp.dir, 'down')}"} 0`);
      } finally {
        daemon.kill('SIGTERM');
        await daemon;
      }
    } finally {
      await sftp.up();
    }
    const next = await runCli(['backup'], local);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/earlier run uploaded offsite/);
    const mine = await runs(local.BACKUP_DIR!);
    expect(mine).toHaveLength(2);
    for (const run of mine) {
      expect((await manifestOf(local.BACKUP_DIR!, run)).offsite?.state).toBe('complete');
      expect(await readdir(join(sftp.dir, 'down', run))).toContain('manifest.json');
    }
  });

  it('the connection cut in the middle of a file: no complete-looking file is left, the run is marked failed', async () => {
    const proxy = await startCutProxy(sftp.port);
    const local = { ...env, SFTP_PORT: String(proxy.port), SFTP_PATH: join(sftp.dir, 'cut'), BACKUP_DIR: join(work, 'cut') };
    try {
      proxy.cutAfter(1 * MIB);
      const r = await runCli(['backup'], local);
      expect(r.exitCode).toBe(1);
      const [run] = await runs(local.BACKUP_DIR!);
      expect((await manifestOf(local.BACKUP_DIR!, run!)).offsite?.state).toBe('failed');
      const left = await filesBelow(join(sftp.dir, 'cut')).catch(() => [] as string[]);
      expect(left.filter((f) => !f.endsWith('.partial'))).toEqual(left.filter((f) => /app\.dump\.zst$/.test(f)));
      expect(left.some((f) => f.endsWith('manifest.json') || f.endsWith('uploads.tar.gz'))).toBe(false);
    } finally {
      await proxy.stop();
    }
  });

  it('prune removes old runs from the SFTP server by its own retention (SFTP_KEEP_DAYS)', async () => {
    const local = { ...env, SFTP_PATH: join(sftp.dir, 'prune'), BACKUP_DIR: join(work, 'prune'), SFTP_KEEP_DAYS: '1', BACKUP_KEEP_DAYS: '-1' };
    expect((await runCli(['backup', '--tier', 'daily'], { ...local, BACKUP_FAKE_NOW: '2020-01-01T00:00:00Z' })).exitCode).toBe(0);
    expect((await runCli(['backup', '--tier', 'daily'], local)).exitCode).toBe(0);
    expect(await readdir(join(sftp.dir, 'prune', 'daily'))).toHaveLength(1);
    expect((await runs(local.BACKUP_DIR!)).filter((r) => r.startsWith('daily/'))).toHaveLength(2);
  });

  it('a password login (a throwaway system user) works; bad SFTP settings are one line each', async () => {
    await sftp.password('bsc-sftp-user', 'Sftp-Pass-9x');
    const { SFTP_IDENTITY_FILE: _, ...keyless } = env;
    const local: Record<string, string> = { ...keyless, SFTP_USER: 'bsc-sftp-user', SFTP_PASSWORD: 'Sftp-Pass-9x', SFTP_PATH: 'backups', BACKUP_DIR: join(work, 'password') };
    const r = await runCli(['backup'], local);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toContain('Sftp-Pass-9x');
    const [run] = await runs(local.BACKUP_DIR!);
    expect(await readdir(join('/home/bsc-sftp-user/backups', run!))).toContain('manifest.json');
    const wrong = await runCli(['backup'], { ...local, SFTP_PASSWORD: 'nope' });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/the server rejected the login: check SFTP_USER and SFTP_PASSWORD or SFTP_IDENTITY_FILE/);
    const { SFTP_HOST_KEY: _k, SFTP_USER: _u, ...unset } = local;
    const bad = await runCli(['backup'], unset);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/SFTP_USER: needed with SFTP_HOST/);
    expect(bad.stderr).toMatch(/SFTP_HOST_KEY: needed, so that backups never go to an impostor/);
  });
});

describe('WAL over SFTP', () => {
  it('putWal stores a WAL file under wal/<timeline>/ whole (no .partial left), listWal lists only our plain files, getWal reads it back, deleteWal removes it, and a missing one is no error', async () => {
    const { loadConfig } = await import('../src/config/load.ts');
    const { remoteTargets } = await import('../src/offsite/targets.ts');
    const { createLogger } = await import('../src/log.ts');
    const { hashFile } = await import('../src/util/hash.ts');
    const { config } = loadConfig({ ...env, SFTP_PATH: join(sftp.dir, 'wal-test') });
    const [target] = await remoteTargets(config!, createLogger('silent', 'json'));
    const name = '000000010000000000000007';
    const local = join(work, `${name}.zst`);
    await writeFile(local, randomBytes(64 * 1024));
    const { sha256, size } = await hashFile(local);
    await target!.putWal(`${name}.zst`, local, sha256, size);
    const remote = join(sftp.dir, 'wal-test/wal/00000001', `${name}.zst`);
    expect(await readFile(remote)).toEqual(await readFile(local));
    expect(await readdir(join(sftp.dir, 'wal-test/wal/00000001'))).toEqual([`${name}.zst`]);
    // restore --pitr from this target: only plain files with our names, in timeline folders, are listed.
    await writeFile(join(sftp.dir, 'wal-test/wal/00000001/notes.txt'), 'not ours');
    await symlink('/etc/passwd', join(sftp.dir, 'wal-test/wal/00000001/000000010000000000000009.zst'));
    await mkdir(join(sftp.dir, 'wal-test/wal/elsewhere'));
    await writeFile(join(sftp.dir, 'wal-test/wal/elsewhere/00000001000000000000000A.zst'), 'stray');
    expect(await target!.listWal()).toEqual([`${name}.zst`]);
    const { stream } = await target!.getWal(`${name}.zst`);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(await readFile(local));
    await rm(join(sftp.dir, 'wal-test/wal/00000001/notes.txt'));
    await rm(join(sftp.dir, 'wal-test/wal/00000001/000000010000000000000009.zst'));
    await target!.deleteWal([`${name}.zst`, '000000010000000000000008.zst']);
    expect(await readdir(join(sftp.dir, 'wal-test/wal/00000001'))).toEqual([]);
  });
});
