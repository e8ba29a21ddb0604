import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BaseBackupArtifact } from '../src/manifest.ts';
import { chooseBase, type BaseCandidate } from '../src/run/pitr.ts';
import { parseTarget, planWal } from '../src/wal/recovery.ts';
import type { WalFile } from '../src/wal/archive.ts';
import { hashFile } from '../src/util/hash.ts';
import { formatLsn, parseLsn, parseSegment, segmentFile, segmentName, walNotNeeded } from '../src/wal/lsn.ts';
import { CLI, filesBelow, readJson, runCli, tempDir, until } from './support/cli.ts';
import { PG15_BIN, freePort, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

const MB16 = 16 * 1024 * 1024;
/** The tier folder of a run, from the volume. */
let manifestTier: (id: string) => string;

describe('WAL positions and segment names (pure)', () => {
  it.each([
    ['0/2000028', 1, '000000010000000000000002'],
    ['0/FFFFFFFF', 1, '0000000100000000000000FF'],
    ['1/0', 3, '000000030000000100000000'],
    ['A/3B000000', 2, '000000020000000A0000003B'],
  ])('%s on timeline %i is in %s', (lsn, timeline, name) => {
    const value = parseLsn(lsn)!;
    expect(formatLsn(value)).toBe(lsn);
    expect(segmentName(timeline, value, MB16)).toBe(name);
    const seg = parseSegment(name, MB16)!;
    expect(seg.timeline).toBe(timeline);
    expect(segmentFile(timeline, seg.segNo, MB16)).toBe(name);
  });

  it('refuses what is not an LSN or a segment name', () => {
    for (const bad of ['', '0/', '/1', '0/2000028x', 'G/1', '0/123456789']) expect(parseLsn(bad)).toBeUndefined();
    for (const bad of ['00000001000000000000001', '0000000100000000000001000', '000000010000000000000100', '00000001.history']) expect(parseSegment(bad, MB16)).toBeUndefined();
  });

  it('targets: latest, a WAL position, a time (UTC without a zone); anything else is one line', () => {
    expect(parseTarget('latest')).toEqual({ kind: 'latest' });
    expect(parseTarget('0/3000060')).toEqual({ kind: 'lsn', lsn: parseLsn('0/3000060') });
    expect(parseTarget('2026-11-04 10:41:07')).toEqual({ kind: 'time', time: new Date('2026-11-04T10:41:07Z') });
    expect(parseTarget('2026-11-04T10:41:07+02:00')).toEqual({ kind: 'time', time: new Date('2026-11-04T08:41:07Z') });
    expect(() => parseTarget('yesterday')).toThrow(/--pitr expects latest, a time/);
  });
});

describe('WAL retention (pure)', () => {
  const names = ['000000010000000000000003', '000000010000000000000004', '000000010000000000000005', '000000020000000000000006', '00000002.history'];
  it('removes only segments before the earliest kept base backup; history files and a volume without base backups keep everything', () => {
    const base = (startLsn: string) => ({ startLsn, walSegmentSize: MB16 });
    expect(walNotNeeded(names, [base('0/5000028'), base('0/6000028')])).toEqual(['000000010000000000000003', '000000010000000000000004']);
    expect(walNotNeeded(names, [base('0/3000028')])).toEqual([]);
    expect(walNotNeeded(names, [base('0/9000028')])).toEqual(names.slice(0, 4));
    expect(walNotNeeded(names, [])).toEqual([]);
  });
});

describe('choosing a base backup and its WAL (pure)', () => {
  const base = (id: string, start: string, end: string, endTime: string): BaseCandidate => ({
    runId: id,
    runDir: `/b/weekly/${id}`,
    artifact: { startLsn: start, endLsn: end, endTime, startTime: endTime, timeline: 1, walSegmentSize: MB16 } as BaseBackupArtifact,
  });
  const bases = [base('A', '0/2000028', '0/2000100', '2026-11-01T00:00:10Z'), base('B', '0/5000028', '0/5000100', '2026-11-08T00:00:10Z')];
  const wal = (...names: string[]) => new Map(names.map((name): [string, WalFile] => [name, { name, file: `${name}.zst`, path: `/w/${name}.zst`, compressed: true, encrypted: false, partial: false }]));

  it('the newest base backup that ended before the target', () => {
    expect(chooseBase(bases, { kind: 'latest' })?.runId).toBe('B');
    expect(chooseBase(bases, { kind: 'time', time: new Date('2026-11-05T00:00:00Z') })?.runId).toBe('A');
    expect(chooseBase(bases, { kind: 'time', time: new Date('2026-11-01T00:00:05Z') })).toBeUndefined();
    expect(chooseBase(bases, { kind: 'lsn', lsn: parseLsn('0/6000000')! })?.runId).toBe('B');
    expect(chooseBase(bases, { kind: 'lsn', lsn: parseLsn('0/4000000')! })?.runId).toBe('A');
  });

  it('the segments from the start on, stopping at a gap; complete only when they reach the end point', () => {
    const a = bases[0]!.artifact;
    const full = planWal(a, wal('000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '00000002.history'));
    expect(full.files.map((f) => f.name)).toEqual(['00000002.history', '000000010000000000000002', '000000010000000000000003']);
    expect(full).toMatchObject({ first: '000000010000000000000002', last: '000000010000000000000003', gap: undefined, reachesEnd: true });
    const gap = planWal(a, wal('000000010000000000000002', '000000010000000000000004'));
    expect(gap).toMatchObject({ last: '000000010000000000000002', gap: '000000010000000000000003', reachesEnd: true });
    expect(planWal(a, wal('000000010000000000000003')).reachesEnd).toBe(false);
  });
});

/**
 * For real: a PostgreSQL 15 server (wal_level=replica, its pg_hba.conf allows replication from 127.0.0.1),
 * the daemon streaming WAL, a base backup, rows inserted, a time T noted, the table dropped; restore --pitr T
 * into a new folder, a server started on it, and the data is the state at T.
 */
let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
let postgresUser: { uid: number; gid: number };

async function startOn(data: string): Promise<{ sql: (q: string) => Promise<string>; stop: () => Promise<void> }> {
  const port = await freePort();
  const socket = await tempDir('pitr-socket');
  await chown(socket, postgresUser.uid, postgresUser.gid);
  const asPostgres = (file: string, args: string[]) => execa('runuser', ['-u', 'postgres', '--', file, ...args]);
  await asPostgres(join(PG15_BIN, 'pg_ctl'), ['-D', data, '-l', join(socket, 'log'), '-w', '-t', '60', '-o', `-p ${port} -k ${socket} -c listen_addresses=127.0.0.1`, 'start']);
  return {
    sql: async (q) => (await execa(join(PG15_BIN, 'psql'), ['-X', '-q', '-A', '-t', '-h', socket, '-p', String(port), '-U', 'postgres', '-d', 'app', '-c', q])).stdout,
    stop: async () => {
      await asPostgres(join(PG15_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => undefined);
      await rm(socket, { recursive: true, force: true });
    },
  };
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the PITR test starts a server on the restored folder as the postgres user: run it as root (as .ci/run does)');
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', 'CREATE TABLE t (x int PRIMARY KEY);');
  work = await tempDir('pitr');
  // The restored folders inside are started by the postgres user, who must reach them.
  await chmod(work, 0o755);
  postgresUser = { uid: Number((await execa('id', ['-u', 'postgres'])).stdout), gid: Number((await execa('id', ['-g', 'postgres'])).stdout) };
  manifestTier = (id) => ['daily', 'weekly', 'monthly', 'yearly'].find((t) => existsSync(join(work, 'backups', t, id)))!;
  env = { ...pg.env, ...s3.env, BACKUP_DIR: join(work, 'backups'), POSTGRES_DB: 'app', WAL_ARCHIVE: 'true', SCHEDULE: '0 0 1 1 *', BASE_BACKUP_SCHEDULE: '0 0 1 1 *', VALIDATE_ON_START: 'false' };
}, 60_000);

afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('point-in-time recovery, for real', () => {
  it('streams WAL, takes a base backup, and restore --pitr T brings back exactly the state at T', async () => {
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env }, extendEnv: false, reject: false, all: true });
    let log = '';
    let T = '';
    let baseRun = '';
    try {
      await until('the replication slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'backup_sidecar'")) === 't' ? true : undefined));
      await pg.sql('app', 'INSERT INTO t SELECT generate_series(1, 100);');
      const base = await runCli(['basebackup'], env);
      expect(base.exitCode, base.stderr).toBe(0);
      const runDir = base.stdout.split(' ')[0]!;
      baseRun = runDir.split('/').at(-1)!;
      const manifest = await readJson<{ tier: string; artifacts: BaseBackupArtifact[] }>(join(runDir, 'manifest.json'));
      expect(manifest.artifacts).toEqual([expect.objectContaining({ kind: 'basebackup', file: 'base.tar.zst', source: 'cluster', timeline: 1, walSegmentSize: MB16 })]);
      expect(parseLsn(manifest.artifacts[0]!.endLsn)! >= parseLsn(manifest.artifacts[0]!.startLsn)!).toBe(true);

      await pg.sql('app', 'INSERT INTO t SELECT generate_series(101, 200);');
      // T: after the insert's commit, before the drop's (commit times are what recovery_target_time compares).
      const target = await pg.sql('app', `SELECT pg_sleep(0.02); SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'); SELECT pg_sleep(0.02);`);
      T = target.split('\n').filter((l) => /^\d{4}-/.test(l))[0]!;
      await pg.sql('app', 'DROP TABLE t;');
      const last = await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();');
      const segment = last.split('\n')[0]!;
      // The segment holding the drop is complete once pg_receivewal has it in full.
      await until(`WAL segment ${segment} received`, async () => {
        const files = [...(await readdir(join(work, 'backups/wal/stream')).catch(() => [])), ...(await readdir(join(work, 'backups/wal/00000001')).catch(() => []))];
        return files.some((f) => f === segment || f === `${segment}.zst`) ? true : undefined;
      });
    } finally {
      daemon.kill('SIGTERM');
      log = String((await daemon).all ?? '');
    }
    expect(log).toContain('streaming WAL');
    // The official image's default; the warning says how to bound what the slot keeps.
    expect(log).toContain("max_slot_wal_keep_size is unlimited");
    const archived = (await readdir(join(work, 'backups/wal/00000001'))).filter((f) => f.endsWith('.zst')).sort();
    expect(archived.length).toBeGreaterThan(0);
    // Shipped as they completed: the same bytes in the bucket, beside the base backup run.
    const walKeys = (await s3.keys()).filter((k) => /(^|\/)wal\/00000001\//.test(k)).sort();
    expect(walKeys.map((k) => k.split('/').at(-1))).toEqual(archived);
    for (const name of archived.slice(-2)) {
      const local = await hashFile(join(work, 'backups/wal/00000001', name));
      const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: walKeys.find((k) => k.endsWith(name))! }));
      expect(createHash('sha256').update(await object.Body!.transformToByteArray()).digest('hex')).toBe(local.sha256);
    }
    expect((await runCli(['status'], env)).stdout).toMatch(/^WAL offsite: all of it in s3:\/\/backups/m);


    const dry = await runCli(['restore', '--pitr', T, '--dry-run'], env);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^base backup: run \d{8}T\d{6}Z \(\d+\/[0-9A-F]+ to \d+\/[0-9A-F]+ on timeline 1/m);
    expect(dry.stdout).toMatch(/^complete: yes$/m);
    expect(dry.stdout).toContain('dry run: nothing written');

    const data = join(work, 'restored');
    const restored = await runCli(['restore', '--pitr', T, '--pgdata', data, '--pgdata-owner', `${postgresUser.uid}:${postgresUser.gid}`], env);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`restored into ${data}`);
    expect(restored.stdout).toMatch(/next: start PostgreSQL 15 on/);
    const server = await startOn(data);
    try {
      await until('recovery to end and the server to promote', async () => ((await server.sql('SELECT pg_is_in_recovery()').catch(() => 't')) === 'f' ? true : undefined), 60_000);
      expect(await server.sql('SELECT count(*), min(x), max(x) FROM t')).toBe('200|1|200');
    } finally {
      await server.stop();
    }

    // latest: to the end of the WAL, after the drop.
    const latestDir = join(work, 'latest');
    const latest = await runCli(['restore', '--pitr', 'latest', '--pgdata', latestDir, '--pgdata-owner', `${postgresUser.uid}:${postgresUser.gid}`], env);
    expect(latest.exitCode, latest.stderr).toBe(0);
    const after = await startOn(latestDir);
    try {
      await until('promotion', async () => ((await after.sql('SELECT pg_is_in_recovery()').catch(() => 't')) === 'f' ? true : undefined), 60_000);
      expect(await after.sql("SELECT to_regclass('public.t') IS NULL")).toBe('t');
    } finally {
      await after.stop();
    }

    // Unhappy paths: a target before the base backup ended; a folder that is not empty.
    const early = await runCli(['restore', '--pitr', '2020-01-01T00:00:00Z', '--pgdata', join(work, 'early')], env);
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toMatch(/no base backup ends before 2020-01-01T00:00:00Z: the oldest, \d{8}T\d{6}Z, ends at/);
    const inside = await runCli(['restore', '--pitr', T, '--pgdata', join(work, 'backups/pgdata')], env);
    expect(inside.exitCode).toBe(2);
    expect(inside.stderr).toMatch(/--pgdata .* BACKUP_DIR .*: restore into a folder of its own/);
    const busy = await runCli(['restore', '--pitr', T, '--pgdata', data], env);
    expect(busy.exitCode).toBe(2);
    expect(busy.stderr).toMatch(/--pgdata .* is not empty/);

    // The PITR drill: a throwaway PostgreSQL 15 recovers the base backup and all the WAL, and answers.
    // Without PG_SERVER_BIN_DIR it finds the major's own server where Debian (and the image) keeps it.
    expect(PG15_BIN).toBe('/usr/lib/postgresql/15/bin');
    const drill = await runCli(['verify', '--restore', baseRun], env);
    expect(drill.exitCode, drill.stderr + drill.stdout).toBe(0);
    const report = await readJson<{ ok: boolean; checks: { check: string; ok: boolean; detail: string }[] }>(join(work, 'backups', manifestTier(baseRun), baseRun, 'verify.json'));
    expect(report.checks.find((c) => c.check === 'recover to the end of the WAL')).toMatchObject({ ok: true, detail: expect.stringMatching(/^PostgreSQL 15\S* recovered \d+ WAL file\(s\) to \d+\/[0-9A-F]+, became consistent and promoted; \d+ database\(s\) answer$/) });
    // Without a server binary it is "skipped", never passed.
    const skipped = await runCli(['verify', '--restore', baseRun], { ...env, PG_SERVER_BIN_DIR: join(work, 'no-server') });
    expect(skipped.exitCode).toBe(1);
    expect(skipped.stdout + skipped.stderr).toContain(`skipped: no server binary: PG_SERVER_BIN_DIR ${join(work, 'no-server')} lacks postgres or pg_ctl`);
    // A damaged segment is caught.
    const segs = (await readdir(join(work, 'backups/wal/00000001'))).filter((f) => f.endsWith('.zst')).sort();
    const victim = join(work, 'backups/wal/00000001', segs[Math.floor(segs.length / 2)]!);
    const original = await readFile(victim);
    const broken = Buffer.from(original);
    for (let i = 20; i < Math.min(broken.length, 200); i++) broken[i] = broken[i]! ^ 0xff;
    await writeFile(victim, broken);
    const damaged = await runCli(['verify', '--restore', baseRun], { ...env, PG_SERVER_BIN_DIR: PG15_BIN });
    expect(damaged.exitCode).toBe(1);
    expect(damaged.stdout + damaged.stderr).toMatch(/does not decompress|recovery stopped at/);
    await writeFile(victim, original);

    // A newer base backup, and retention keeping one: the older one goes, and the WAL only it needed.
    await pg.sql('app', 'CREATE TABLE u (x int); SELECT pg_switch_wal();');
    // A segment from after the new base backup (as the daemon would have archived it) must stay.
    const later = segmentFile(1, 0x50n, MB16);
    await writeFile(join(work, 'backups/wal/00000001', `${later}.zst`), '');
    const second = await runCli(['basebackup'], { ...env, BACKUP_KEEP_LAST: '1', BACKUP_KEEP_DAYS: '0', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0', BACKUP_KEEP_YEARS: '0' });
    expect(second.exitCode, second.stderr).toBe(0);
    const kept = await readJson<{ artifacts: BaseBackupArtifact[] }>(join(second.stdout.split(' ')[0]!, 'manifest.json'));
    const startSeg = parseLsn(kept.artifacts[0]!.startLsn)! / BigInt(MB16);
    const left = await readdir(join(work, 'backups/wal/00000001'));
    expect(left).toContain(`${later}.zst`);
    await rm(join(work, 'backups/wal/00000001', `${later}.zst`));
    expect(left.every((f) => parseSegment(f.replace('.zst', ''), MB16)!.segNo >= startSeg)).toBe(true);
    expect(second.stderr).toContain('pruned WAL no kept base backup needs');
    // And in the bucket: only what the kept base backup needs is left.
    const remoteWal = (await s3.keys()).filter((k) => /(^|\/)wal\/00000001\//.test(k)).map((k) => parseSegment(k.split('/').at(-1)!.replace('.zst', ''), MB16)!.segNo);
    expect(remoteWal.every((seg) => seg >= startSeg)).toBe(true);
  }, 240_000);

  it('the sidecar stopped for a while loses no segment: the slot kept them, and the restarted daemon fetches every one', async () => {
    const first = await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_lsn());');
    // While the daemon is down: three segments' worth of changes, each switch completing one.
    for (let i = 0; i < 3; i++) await pg.sql('app', `INSERT INTO u SELECT generate_series(1, 1000); SELECT pg_switch_wal();`);
    const last = await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_lsn());');
    const size = MB16;
    const from = parseSegment(first, size)!.segNo;
    const to = parseSegment(last, size)!.segNo;
    // pg_walfile_name of a position right after a switch names the segment just completed: `to` is complete.
    expect(to - from).toBeGreaterThanOrEqual(2n);
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env }, extendEnv: false, reject: false, all: true });
    try {
      await until('every segment written while the daemon was down', async () => {
        const have = new Set((await readdir(join(work, 'backups/wal/00000001')).catch(() => [])).map((f) => f.replace('.zst', '')));
        for (const f of await readdir(join(work, 'backups/wal/stream')).catch(() => [])) have.add(f);
        for (let seg = from; seg <= to; seg++) if (!have.has(segmentFile(1, seg, size))) return undefined;
        return true;
      }, 60_000);
      const status = await runCli(['status'], env);
      expect(status.stdout).toMatch(/^WAL archive: \d+ segment\(s\), newest [0-9A-F]{24}, written .* ago$/m);
      expect(status.stdout).toMatch(/^WAL slot backup_sidecar: streaming, the server keeps [\d.]+ \w?B for it$/m);
      await until('the daemon to record that it streams', async () => ((await runCli(['status'], env)).stdout.includes('WAL streaming: yes, since') ? true : undefined));
      const wal = await runCli(['wal'], env);
      expect(wal.stdout).toMatch(/^slot backup_sidecar: active, the server keeps/m);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);

    // A segment lost from the middle: a gap, said by healthcheck, status and the dry run, never silent.
    const missing = segmentFile(1, from + 1n, size);
    await rm(join(work, 'backups/wal/00000001', `${missing}.zst`));
    const health = await runCli(['healthcheck'], env);
    expect(health.exitCode).toBe(1);
    expect(health.stderr).toContain(`unhealthy: the WAL archive has a gap: ${missing} missing`);
    expect((await runCli(['status'], env)).stdout).toContain(`WAL GAP: ${missing} missing`);
    // With the bucket, restore fills the hole from it; without a remote target, it is a gap.
    const filled = await runCli(['restore', '--pitr', 'latest', '--dry-run'], env);
    expect(filled.stdout).toMatch(/^WAL: .*; 1 file\(s\) from the remote targets$/m);
    expect(filled.stdout).toMatch(/^complete: yes$/m);
    const local = Object.fromEntries(Object.entries(env).filter(([k]) => !(k in s3.env)));
    const dry = await runCli(['restore', '--pitr', 'latest', '--dry-run'], local);
    expect(dry.stdout).toContain(`then a gap: ${missing} is missing`);
    expect(dry.stdout).toMatch(/^complete: NO$/m);
  });

  it('a role without REPLICATION: basebackup fails in one line saying what to grant, and leaves no run', async () => {
    await pg.sql('postgres', "CREATE ROLE plain LOGIN PASSWORD 'plain-pw-1'; GRANT CONNECT ON DATABASE app TO plain;");
    const dir = join(work, 'norepl');
    await mkdir(dir);
    const result = await runCli(['basebackup'], { ...env, BACKUP_DIR: dir, POSTGRES_USER: 'plain', POSTGRES_PASSWORD: 'plain-pw-1' });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^backup-sidecar: pg_basebackup failed: plain may not open a replication connection \(.*\): ALTER ROLE plain REPLICATION, or use a role that has it$/m);
    expect((await filesBelow(dir)).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('wal --drop-slot: refused while WAL_ARCHIVE is on; with it off, the slot is gone from the server', async () => {
    const refused = await runCli(['wal', '--drop-slot'], env);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('WAL_ARCHIVE is true: the daemon would create the slot again');
    const dropped = await runCli(['wal', '--drop-slot'], { ...env, WAL_ARCHIVE: 'false' });
    expect(dropped.exitCode, dropped.stderr).toBe(0);
    expect(dropped.stdout).toMatch(/^dropped slot backup_sidecar on 127\.0\.0\.1:\d+: the server no longer keeps WAL for it/);
    expect(await pg.sql('postgres', "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backup_sidecar'")).toBe('0');
    const again = await runCli(['wal', '--drop-slot'], { ...env, WAL_ARCHIVE: 'false' });
    expect(again.stdout).toContain('no slot backup_sidecar on 127.0.0.1');
  });

  it('with ENCRYPTION_PASSPHRASE the WAL is encrypted in the volume and the bucket (.zst.age), and restore --pitr decrypts it', async () => {
    const encEnv = { ...env, BACKUP_DIR: join(work, 'enc'), WAL_SLOT: 'enc_slot', S3_PREFIX: 'enc', ENCRYPTION_PASSPHRASE: 'wal-Passphrase-9z' };
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...encEnv }, extendEnv: false, reject: false, all: true });
    try {
      await until('the enc_slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'enc_slot'")) === 't' ? true : undefined));
      const base = await runCli(['basebackup'], encEnv);
      expect(base.exitCode, base.stderr).toBe(0);
      await pg.sql('app', 'CREATE TABLE secret_rows AS SELECT generate_series(1, 500) AS x;');
      const segment = (await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();')).split('\n')[0]!;
      await until(`${segment} archived, encrypted`, async () => ((await readdir(join(work, 'enc/wal/00000001')).catch((): string[] => [])).includes(`${segment}.zst.age`) ? true : undefined), 60_000);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);
    const kept = await readdir(join(work, 'enc/wal/00000001'));
    expect(kept.length).toBeGreaterThan(0);
    // Signed too, with the key derived from the passphrase.
    expect(kept.every((f) => f.endsWith('.zst.age') || (f.endsWith('.zst.age.sig') && kept.includes(f.slice(0, -4))))).toBe(true);
    expect(kept.filter((f) => f.endsWith('.sig')).length).toBe(kept.length / 2);
    const remote = (await s3.keys()).filter((k) => k.startsWith('enc/wal/'));
    expect(remote.length).toBeGreaterThan(0);
    expect(remote.every((k) => k.endsWith('.zst.age') || k.endsWith('.zst.age.sig'))).toBe(true);

    const data = join(work, 'enc-restored');
    const restored = await runCli(['restore', '--pitr', 'latest', '--pgdata', data, '--pgdata-owner', `${postgresUser.uid}:${postgresUser.gid}`], encEnv);
    expect(restored.exitCode, restored.stderr).toBe(0);
    const server = await startOn(data);
    try {
      await until('promotion', async () => ((await server.sql('SELECT pg_is_in_recovery()').catch(() => 't')) === 'f' ? true : undefined), 60_000);
      expect(await server.sql('SELECT count(*) FROM secret_rows')).toBe('500');
    } finally {
      await server.stop();
    }
    // Without the passphrase the WAL cannot be read: one line, nothing left in the folder.
    const { ENCRYPTION_PASSPHRASE: _, ...noKey } = encEnv;
    const refused = await runCli(['restore', '--pitr', 'latest', '--pgdata', join(work, 'enc-nokey')], noKey);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr.trim().split('\n').at(-1)).toMatch(/^backup-sidecar: run \d{8}T\d{6}Z.*(encrypted: set ENCRYPTION_IDENTITY_FILE|ENCRYPTION_PASSPHRASE)/);
    expect(await readdir(join(work, 'enc-nokey')).catch((): string[] => [])).toEqual([]);
    await pg.sql('postgres', "SELECT pg_drop_replication_slot('enc_slot');");
  }, 120_000);

  it('with BACKUP_SIGNING_KEY every WAL file is signed (<file>.sig, in the volume and the bucket); a forged or unsigned segment stops restore --pitr before anything is written', async () => {
    const signEnv = { ...env, BACKUP_DIR: join(work, 'signed'), WAL_SLOT: 'signed_slot', S3_PREFIX: 'signed', BACKUP_SIGNING_KEY: 'a'.repeat(64), WAL_PARTIAL_INTERVAL: '1s' };
    const walFolder = join(work, 'signed/wal/00000001');
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...signEnv }, extendEnv: false, reject: false, all: true });
    let last = '';
    try {
      await until('the signed_slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'signed_slot'")) === 't' ? true : undefined));
      const base = await runCli(['basebackup'], signEnv);
      expect(base.exitCode, base.stderr).toBe(0);
      for (let i = 0; i < 2; i++) last = (await pg.sql('app', `CREATE TABLE signed_${i} AS SELECT generate_series(1, 100) AS x; SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();`)).split('\n')[0]!;
      await until(`${last} archived and shipped with its signature`, async () => ((await s3.keys()).includes(`signed/wal/00000001/${last}.zst.sig`) ? true : undefined), 60_000);
      await until('the partial segment shipped with its signature', async () => ((await s3.keys()).some((k) => /^signed\/wal\/00000001\/[0-9A-F]{24}\.partial\.zst\.sig$/.test(k)) ? true : undefined), 30_000);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);
    const kept = await readdir(walFolder);
    const segments = kept.filter((f) => f.endsWith('.zst'));
    expect(segments.length).toBeGreaterThan(2);
    for (const f of segments) expect(kept, f).toContain(`${f}.sig`);
    const remote = new Set(await s3.keys());
    for (const f of segments) expect(remote.has(`signed/wal/00000001/${f}.sig`), f).toBe(true);

    const victim = join(walFolder, `${last}.zst`);
    const genuine = await readFile(victim);
    const pgdataFor = (name: string) => join(work, name);
    // A genuine segment of the same cluster, put in another's place: its signature names the other file.
    const donor = segments.filter((f) => f !== `${last}.zst`).at(-1)!;
    await writeFile(victim, await readFile(join(walFolder, donor)));
    const forged = await runCli(['restore', '--pitr', 'latest', '--pgdata', pgdataFor('signed-forged')], signEnv);
    expect(forged.exitCode).toBe(1);
    expect(forged.stderr.trim().split('\n').at(-1)).toBe(`backup-sidecar: WAL file ${victim} has a signature that does not match its content under any BACKUP_SIGNING_KEY: it was changed or forged, so it is refused and nothing was touched`);
    expect(await readdir(pgdataFor('signed-forged')).catch((): string[] => [])).toEqual([]);

    await writeFile(victim, genuine);
    await rm(`${victim}.sig`);
    const unsigned = await runCli(['restore', '--pitr', 'latest', '--pgdata', pgdataFor('signed-unsigned')], signEnv);
    expect(unsigned.exitCode).toBe(1);
    expect(unsigned.stderr).toContain(`WAL file ${victim} is not signed (no ${last}.zst.sig) and BACKUP_SIGNING_KEY is set: it may be forged, so it is refused and nothing was touched; if it is an older segment made before the key was set, pass --trust-unsigned`);
    expect(await readdir(pgdataFor('signed-unsigned')).catch((): string[] => [])).toEqual([]);
    const trusted = await runCli(['restore', '--pitr', 'latest', '--pgdata', pgdataFor('signed-trusted'), '--trust-unsigned', '--pgdata-owner', `${postgresUser.uid}:${postgresUser.gid}`], signEnv);
    expect(trusted.exitCode, trusted.stderr).toBe(0);
    const server = await startOn(pgdataFor('signed-trusted'));
    try {
      await until('promotion', async () => ((await server.sql('SELECT pg_is_in_recovery()').catch(() => 't')) === 'f' ? true : undefined), 60_000);
      expect(await server.sql('SELECT count(*) FROM signed_1')).toBe('100');
    } finally {
      await server.stop();
    }
    // Retention takes the signatures with the segments, in the volume and the bucket.
    await pg.sql('app', 'SELECT pg_switch_wal();');
    const second = await runCli(['basebackup'], { ...signEnv, BACKUP_KEEP_LAST: '1', BACKUP_KEEP_DAYS: '0', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0', BACKUP_KEEP_YEARS: '0' });
    expect(second.exitCode, second.stderr).toBe(0);
    const left = await readdir(walFolder);
    expect(left.filter((f) => f.endsWith('.zst')).length).toBeLessThan(segments.length);
    expect(left.filter((f) => f.endsWith('.sig')).every((f) => left.includes(f.slice(0, -4)))).toBe(true);
    const remoteLeft = (await s3.keys()).filter((k) => k.startsWith('signed/wal/') && !k.includes('.partial.'));
    expect(remoteLeft.filter((k) => k.endsWith('.sig')).every((k) => remoteLeft.includes(k.slice(0, -4)))).toBe(true);
    expect(remoteLeft.length).toBeLessThan(segments.length * 2);
    await pg.sql('postgres', "SELECT pg_drop_replication_slot('signed_slot');");
  }, 120_000);

  it('the volume lost: restore --pitr from the bucket alone (base backup and WAL fetched and checked); WAL missing in the volume is fetched; a damaged or forged remote segment is refused', async () => {
    const srcEnv = { ...env, BACKUP_DIR: join(work, 'remote-src'), WAL_SLOT: 'remote_slot', S3_PREFIX: 'remote', BACKUP_SIGNING_KEY: 'b'.repeat(64) };
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...srcEnv }, extendEnv: false, reject: false, all: true });
    let last = '';
    try {
      await until('the remote_slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'remote_slot'")) === 't' ? true : undefined));
      const base = await runCli(['basebackup'], srcEnv);
      expect(base.exitCode, base.stderr).toBe(0);
      for (let i = 0; i < 3; i++) last = (await pg.sql('app', `CREATE TABLE remote_${i} AS SELECT generate_series(1, 300) AS x; SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();`)).split('\n')[0]!;
      await until(`${last} in the bucket`, async () => ((await s3.keys()).includes(`remote/wal/00000001/${last}.zst.sig`) ? true : undefined), 60_000);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);
    await pg.sql('postgres', "SELECT pg_drop_replication_slot('remote_slot');");

    // A new host: an empty volume, the same bucket.
    const lostEnv = { ...srcEnv, BACKUP_DIR: join(work, 'remote-dst') };
    await mkdir(lostEnv.BACKUP_DIR);
    const dry = await runCli(['restore', '--pitr', 'latest', '--dry-run'], lostEnv);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^base backup: run \d{8}T\d{6}Z .*, from s3:\/\/backups\/remote$/m);
    expect(dry.stdout).toMatch(/^WAL: [0-9A-F]{24} to [0-9A-F]{24}; \d+ file\(s\) from the remote targets$/m);
    expect(dry.stdout).toMatch(/^complete: yes$/m);
    expect(await readdir(lostEnv.BACKUP_DIR)).toEqual([]);

    // A segment changed in the bucket, its stored sha256 left as it was: damaged, refused, nothing written.
    const key = `remote/wal/00000001/${last}.zst`;
    const genuine = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray());
    const sha = createHash('sha256').update(genuine).digest('hex');
    const other = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: (await s3.keys()).filter((k) => k.startsWith('remote/wal/00000001/') && k.endsWith('.zst') && k !== key).at(-1)! }))).Body!.transformToByteArray());
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: other, Metadata: { sha256: sha } }));
    const damaged = await runCli(['restore', '--pitr', 'latest', '--pgdata', join(work, 'remote-damaged')], lostEnv);
    expect(damaged.exitCode).toBe(1);
    expect(damaged.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^backup-sidecar: s3://backups/remote WAL file ${last}\\.zst is damaged: its sha256 is [0-9a-f]{64}, the one stored with it ${sha}; nothing was restored$`));
    expect(await readdir(join(work, 'remote-damaged')).catch((): string[] => [])).toEqual([]);
    // Forged with a matching sha256: its signature names another file's content.
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: other, Metadata: { sha256: createHash('sha256').update(other).digest('hex') } }));
    const forged = await runCli(['restore', '--pitr', 'latest', '--pgdata', join(work, 'remote-forged')], lostEnv);
    expect(forged.exitCode).toBe(1);
    expect(forged.stderr).toMatch(new RegExp(`WAL file \\S+/${last}\\.zst has a signature that does not match its content under any BACKUP_SIGNING_KEY`));
    expect(await readdir(join(work, 'remote-forged')).catch((): string[] => [])).toEqual([]);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: genuine, Metadata: { sha256: sha } }));

    const data = join(work, 'remote-restored');
    const restored = await runCli(['restore', '--pitr', 'latest', '--pgdata', data, '--pgdata-owner', `${postgresUser.uid}:${postgresUser.gid}`], lostEnv);
    expect(restored.exitCode, restored.stderr).toBe(0);
    expect(restored.stderr).toContain('WAL fetched from the remote targets');
    // The base backup run is in the volume now (checked like any download); the fetched WAL is not kept.
    expect((await runCli(['list'], lostEnv)).stdout).toContain('base.tar.zst');
    expect(existsSync(join(lostEnv.BACKUP_DIR, 'wal'))).toBe(false);
    expect(await readdir(join(lostEnv.BACKUP_DIR, '.partial')).catch((): string[] => [])).toEqual([]);
    const server = await startOn(data);
    try {
      await until('promotion', async () => ((await server.sql('SELECT pg_is_in_recovery()').catch(() => 't')) === 'f' ? true : undefined), 60_000);
      expect(await server.sql('SELECT count(*) FROM remote_2')).toBe('300');
    } finally {
      await server.stop();
    }

    // The source volume lost one segment: the bucket fills the hole.
    const srcWal = join(srcEnv.BACKUP_DIR, 'wal/00000001');
    const middle = (await readdir(srcWal)).filter((f) => f.endsWith('.zst')).sort().at(-2)!;
    await rm(join(srcWal, middle));
    const holed = await runCli(['restore', '--pitr', 'latest', '--dry-run'], srcEnv);
    expect(holed.exitCode, holed.stderr).toBe(0);
    expect(holed.stdout).toMatch(/^WAL: .*; 1 file\(s\) from the remote targets$/m);
    expect(holed.stdout).toMatch(/^complete: yes$/m);
  }, 180_000);

  it('WAL_PARTIAL_INTERVAL: the segment being written reaches the bucket too (<segment>.partial.zst), and goes once the segment is complete', async () => {
    const partEnv = { ...env, BACKUP_DIR: join(work, 'part'), WAL_SLOT: 'part_slot', S3_PREFIX: 'part', WAL_PARTIAL_INTERVAL: '1s' };
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...partEnv }, extendEnv: false, reject: false, all: true });
    try {
      await until('the part_slot in use', async () => ((await pg.sql('postgres', "SELECT active FROM pg_replication_slots WHERE slot_name = 'part_slot'")) === 't' ? true : undefined));
      await pg.sql('app', 'CREATE TABLE idle_rows AS SELECT generate_series(1, 100) AS x;');
      const segment = await pg.sql('app', 'SELECT pg_walfile_name(pg_current_wal_insert_lsn());');
      const key = `part/wal/00000001/${segment}.partial.zst`;
      await until(`${key} in the bucket`, async () => ((await s3.keys()).includes(key) ? true : undefined), 30_000);
      const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      const plain = await execa('zstd', ['-d', '-q', '-c'], { input: Buffer.from(await object.Body!.transformToByteArray()), encoding: 'buffer' });
      expect(plain.stdout.length).toBe(MB16);
      await pg.sql('app', 'SELECT pg_switch_wal(); INSERT INTO idle_rows VALUES (101);');
      await until('the complete segment shipped and its partial copy gone', async () => {
        const keys = await s3.keys();
        return keys.includes(`part/wal/00000001/${segment}.zst`) && !keys.includes(key) ? true : undefined;
      }, 60_000);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);
    await pg.sql('postgres', "SELECT pg_drop_replication_slot('part_slot');");
  }, 120_000);

  it('WAL streaming down (a server that does not answer) longer than WAL_MAX_LAG: healthcheck and status say so, with the reason', async () => {
    const dir = join(work, 'lag');
    const down = await freePort();
    const lagEnv = { ...env, BACKUP_DIR: dir, POSTGRES_PORT: String(down), WAL_MAX_LAG: '2s' };
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...lagEnv }, extendEnv: false, reject: false, all: true });
    try {
      const health = await until('the healthcheck to see WAL streaming down', async () => {
        const r = await runCli(['healthcheck'], lagEnv);
        return r.exitCode === 1 && r.stderr.includes('WAL streaming has been down') ? r : undefined;
      }, 60_000);
      expect(health.stderr).toMatch(/^unhealthy: WAL streaming has been down for \d+ seconds? \(more than WAL_MAX_LAG 2 seconds\): cannot connect to PostgreSQL at 127\.0\.0\.1:\d+/m);
      expect((await runCli(['status'], lagEnv)).stdout).toMatch(/^WAL streaming: DOWN since .*: cannot connect to PostgreSQL/m);
    } finally {
      daemon.kill('SIGTERM');
    }
    const result = await daemon;
    expect(result.exitCode).toBe(0);
    expect(String(result.all)).toMatch(/WAL streaming stopped; starting it again/);
  });

  it('pg_receivewal stuck (SIGSTOP) while the server writes: the lag in bytes and seconds shows in status, /metrics and the JSON, fails the healthcheck past WAL_MAX_LAG, and goes once it resumes', async () => {
    const port = await freePort();
    const stuckEnv = { ...env, BACKUP_DIR: join(work, 'stuck'), WAL_SLOT: 'stuck_slot', S3_PREFIX: 'stuck', WAL_MAX_LAG: '5s', HEALTHCHECK_PORT: String(port) };
    const daemon = execa(process.execPath, [CLI, 'daemon'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...stuckEnv }, extendEnv: false, reject: false, all: true });
    let pid: number | undefined;
    try {
      await until('streaming, and its lag measured', async () => (/^WAL streaming: yes, since .*; .* behind the server/m.test((await runCli(['status'], stuckEnv)).stdout) ? true : undefined), 60_000);
      pid = Number((await execa('pgrep', ['-f', 'pg_receivewal --no-password --directory .*--slot=stuck_slot --no-loop'])).stdout.trim());
      // The exact point: pg_receivewal holds the connection but writes nothing more.
      process.kill(pid, 'SIGSTOP');
      await pg.sql('app', 'CREATE TABLE stuck_rows AS SELECT generate_series(1, 5000) AS x;');
      const health = await until('the healthcheck to see the lag', async () => {
        const r = await runCli(['healthcheck'], stuckEnv);
        return r.exitCode === 1 && r.stderr.includes('behind the server') ? r : undefined;
      }, 60_000);
      expect(health.stderr).toMatch(/^unhealthy: WAL streaming is \d[\d.]* [kM]?B and \d+ seconds behind the server \(measured \S+\), more than WAL_MAX_LAG 5 seconds: is pg_receivewal stuck/m);
      expect((await runCli(['status'], stuckEnv)).stdout).toMatch(/^WAL streaming: yes, since \S+; \d[\d.]* [kM]?B and \d+ seconds behind the server/m);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(Number(/^backup_sidecar_wal_lag_bytes (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      expect(Number(/^backup_sidecar_wal_lag_seconds (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(5);
      const report = (await (await fetch(`http://127.0.0.1:${port}/?format=json`)).json()) as { wal: { streaming: { up: boolean; lag: { bytes: number; seconds: number } } } };
      expect(report.wal.streaming).toMatchObject({ up: true, lag: { bytes: expect.any(Number), seconds: expect.any(Number) } });
      expect(report.wal.streaming.lag.bytes).toBeGreaterThan(0);

      process.kill(pid, 'SIGCONT');
      await until('caught up again', async () => ((await runCli(['healthcheck'], stuckEnv)).exitCode === 0 ? true : undefined), 60_000);
    } finally {
      if (pid !== undefined) process.kill(pid, 'SIGCONT');
      daemon.kill('SIGTERM');
    }
    expect((await daemon).exitCode).toBe(0);
    await pg.sql('postgres', "SELECT pg_drop_replication_slot('stuck_slot');");
  }, 180_000);

  it('basebackup without WAL_ARCHIVE: exit 2 saying why', async () => {
    const result = await runCli(['basebackup'], { ...env, WAL_ARCHIVE: 'false' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('WAL_ARCHIVE: set it to true for base backups');
  });
});
