import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, PutBucketLifecycleConfigurationCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/manifest.ts';
import { readJson, runCli, tempDir } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { startPostgres, type TestServer } from './support/postgres-server.ts';
import { S3_SECRET, startS3, type TestS3 } from './support/s3-server.ts';

let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
const MIB = 1024 * 1024;

async function objectBytes(key: string): Promise<Buffer> {
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The runs in the volume, as tier/run-id. */
async function localRuns(): Promise<string[]> {
  const out: string[] = [];
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) {
    for (const id of await readdir(join(env.BACKUP_DIR!, tier)).catch(() => [])) out.push(`${tier}/${id}`);
  }
  return out.sort();
}

async function manifestOf(run: string): Promise<Manifest> {
  return readJson<Manifest>(join(env.BACKUP_DIR!, run, 'manifest.json'));
}

/** Puts an object straight into the bucket, as another tool or a person would. */
async function put(key: string, body: string | Buffer): Promise<void> {
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body }));
}

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres({ password: 'Pg-Secret-4-offsite' }), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', `CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT i, md5(i::text) FROM generate_series(1, 1000) i;`);
  work = await tempDir('s3');
  await mkdir(join(work, 'uploads'));
  // Incompressible, so the tarball spans several 5 MiB parts.
  await writeFile(join(work, 'uploads/big.bin'), randomBytes(23 * MIB));
  await writeFile(join(work, 'uploads/small.txt'), 'hello\n');
  env = {
    ...pg.env,
    ...s3.env,
    BACKUP_DIR: join(work, 'backups'),
    POSTGRES_DB: 'app',
    MEDIA_PATHS: `uploads:${join(work, 'uploads')}`,
    S3_PREFIX: 'prod/app',
    S3_PART_SIZE: '5MiB',
    LOG_LEVEL: 'debug',
  };
});

afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('offsite copies in S3', () => {
  let first: string | undefined;

  it('streams every artifact to S3 while writing the volume, manifest last, keys mirroring the volume', async () => {
    s3.requests.length = 0;
    const r = await runCli(['backup'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/offsite: complete/);
    [first] = await localRuns();
    const manifest = await manifestOf(first!);
    expect(manifest.offsite).toMatchObject({ url: `s3://${s3.bucket}/prod/app`, state: 'complete', error: null });
    const keys = await s3.keys();
    expect(keys).toEqual([`prod/app/${first}/app.dump.zst`, `prod/app/${first}/manifest.json`, `prod/app/${first}/uploads.tar.gz`]);
    // Byte-identical to the volume; no second request per object (the manifest carries the checksums).
    for (const a of manifest.artifacts) expect(sha256(await objectBytes(`prod/app/${first}/${a.file}`))).toBe(a.sha256);
    for (const a of manifest.artifacts) expect(s3.requests.filter((q) => q.method === 'PUT' && q.url.includes(a.file) && !/partNumber=/.test(q.url)).length).toBeLessThanOrEqual(1);
    // The tarball went up as a multipart upload of several parts; the manifest was the last object written.
    const parts = s3.requests.filter((q) => q.method === 'PUT' && q.url.includes('uploads.tar.gz') && /partNumber=\d+/.test(q.url));
    expect(parts.length).toBeGreaterThanOrEqual(4);
    const writes = s3.requests.filter((q) => q.method === 'PUT' && !/partNumber=/.test(q.url));
    expect(writes.at(-1)!.url).toMatch(/manifest\.json/);
    // The S3 manifest is the local one.
    expect(JSON.parse((await objectBytes(`prod/app/${first}/manifest.json`)).toString())).toEqual(manifest);
    expect(r.stderr).not.toContain(S3_SECRET);
  });

  it('list --remote shows the runs in the bucket', async () => {
    const table = await runCli(['list', '--remote'], env);
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^TIER\\s+RUN\\s+AGE\\s+SIZE\\s+STATE\\s+FILES\\n${first!.replace('/', '\\s+')}\\s+.*complete\\s+app\\.dump\\.zst, uploads\\.tar\\.gz`));
    const json = JSON.parse((await runCli(['list', '--remote', '--json'], env)).stdout) as { id: string; complete: boolean }[];
    expect(json).toMatchObject([{ id: first!.split('/')[1], complete: true }]);
  });

  it('restores a run that exists only in S3: downloaded, checked, restored', async () => {
    const id = first!.split('/')[1]!;
    await rm(join(env.BACKUP_DIR!, first!), { recursive: true });
    await pg.sql('app', 'DELETE FROM notes WHERE id > 10;');
    const r = await runCli(['restore', id, '--yes', '--no-safety-backup'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/downloaded, sha256 matches the manifest/);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('1000');
    expect(await localRuns()).toEqual([first]);
    // An s3:// URL of one file works as well.
    const one = await runCli(['restore', `s3://${s3.bucket}/prod/app/${first}/app.dump.zst`, '--yes', '--target-db', 'app_copy', '--no-safety-backup'], env);
    expect(one.exitCode).toBe(0);
    expect(await pg.sql('app_copy', 'SELECT count(*) FROM notes;')).toBe('1000');
  });

  it('a damaged object in S3 is caught by its checksum: nothing restored, nothing left in the volume', async () => {
    const id = first!.split('/')[1]!;
    const key = `prod/app/${first}/app.dump.zst`;
    const good = await objectBytes(key);
    const bad = Buffer.from(good);
    const middle = bad.length >> 1;
    bad[middle] = bad[middle]! ^ 0xff;
    await put(key, bad);
    try {
      await rm(join(env.BACKUP_DIR!, first!), { recursive: true });
      await pg.sql('app', 'DELETE FROM notes WHERE id > 500;');
      const r = await runCli(['restore', id, '--yes', '--no-safety-backup'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`backup-sidecar: s3://${s3.bucket}/prod/app/${first}/app\\.dump\\.zst is damaged: its sha256 is [0-9a-f]{64} .*the manifest says ${sha256(good)} .*nothing was restored`));
      expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('500');
      expect(await localRuns()).toEqual([]);
      expect(await readdir(join(env.BACKUP_DIR!, '.partial')).catch(() => [])).toEqual([]);
    } finally {
      await put(key, good);
      await pg.sql('app', 'TRUNCATE notes; INSERT INTO notes SELECT i, md5(i::text) FROM generate_series(1, 1000) i;');
    }
  });

  it('transient errors (503 SlowDown, connection resets) are retried with backoff and the run succeeds', async () => {
    for (const how of ['slowdown', 'reset'] as const) {
      s3.requests.length = 0;
      s3.failNext(3, how);
      const r = await runCli(['backup'], { ...env, S3_MAX_ATTEMPTS: '5' });
      expect(r.stderr).not.toMatch(/"level":50/);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/offsite: complete/);
      expect(s3.requests.slice(0, 3).map((q) => q.status)).toEqual(how === 'slowdown' ? [503, 503, 503] : [-1, -1, -1]);
    }
  });

  it('S3 down before the run: the local run completes, is marked, exit 1; the next run uploads it', async () => {
    const before = await localRuns();
    await s3.down();
    let marked: string | undefined;
    try {
      const r = await runCli(['backup'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/backup-sidecar: not offsite: S3 checking bucket backups failed: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): check S3_ENDPOINT and the network; the run is kept in the volume/);
      [marked] = (await localRuns()).filter((run) => !before.includes(run));
      const manifest = await manifestOf(marked!);
      expect(manifest.offsite).toMatchObject({ state: 'failed', error: expect.stringMatching(/ECONNREFUSED/) });
      // `list` tells which runs are not offsite.
      expect((await runCli(['list'], env)).stdout).toMatch(new RegExp(`${marked!.split('/')[1]}\\s+-\\s+\\S+\\s+\\S+ \\S+\\s+failed`));
    } finally {
      await s3.up();
    }
    const next = await runCli(['backup'], env);
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toMatch(/earlier run uploaded offsite/);
    expect((await manifestOf(marked!)).offsite?.state).toBe('complete');
    const remote = JSON.parse((await runCli(['list', '--remote', '--json'], env)).stdout) as { id: string; tier: string; complete: boolean }[];
    for (const run of await localRuns()) expect(remote).toContainEqual(expect.objectContaining({ id: run.split('/')[1], tier: run.split('/')[0], complete: true }));
  });

  it('S3 going down in the middle of an upload: local run kept and marked; retried by the next run', async () => {
    const before = await localRuns();
    s3.cutAfter(7 * MIB);
    let cut: string | undefined;
    try {
      const r = await runCli(['backup'], env);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/backup-sidecar: not offsite: S3 upload of prod\/app\/\w+\/\w+\/uploads\.tar\.gz failed: /);
      [cut] = (await localRuns()).filter((run) => !before.includes(run));
      expect((await manifestOf(cut!)).offsite?.state).toBe('failed');
      expect(await s3.keys()).not.toContain(`prod/app/${cut}/manifest.json`);
    } finally {
      await s3.up();
    }
    const next = await runCli(['backup'], env);
    expect(next.exitCode).toBe(0);
    expect((await manifestOf(cut!)).offsite?.state).toBe('complete');
    expect(await s3.keys()).toContain(`prod/app/${cut}/manifest.json`);
  });

  it('a run whose file changed in the volume since it was made is not uploaded by the catch-up', async () => {
    const local = { ...env, BACKUP_DIR: join(work, 'changed-backups'), S3_PREFIX: 'changed' };
    await s3.down();
    try {
      expect((await runCli(['backup'], local)).exitCode).toBe(1);
    } finally {
      await s3.up();
    }
    const [tier] = await readdir(local.BACKUP_DIR).then((names) => names.filter((n) => !n.startsWith('.')));
    const [id] = await readdir(join(local.BACKUP_DIR, tier!));
    const dump = join(local.BACKUP_DIR, tier!, id!, 'app.dump.zst');
    const bytes = await readFile(dump);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(dump, bytes);
    const next = await runCli(['backup'], local);
    expect(next.exitCode).toBe(1);
    expect(next.stderr).toMatch(new RegExp(`1 earlier run\\(s\\) still not offsite in s3:\\/\\/\\S+: .*${id}/app\\.dump\\.zst no longer matches the manifest of run ${id}: not uploaded`));
    expect(await s3.keys()).not.toContain(`changed/${tier}/${id}/app.dump.zst`);
    expect(await s3.keys()).not.toContain(`changed/${tier}/${id}/manifest.json`);
  });

  it('an artifact that outgrows its parts stops uploading before the part limit, aborts the multipart upload, and is shipped from disk next', async () => {
    // 16 MiB of media, 5 MiB parts, at most 3 parts: S3's limit would be hit at part 4. (The S3 test
    // server takes parts of at most 11 MiB, which bounds the sizes this test can use.)
    await mkdir(join(work, 'grow'));
    await writeFile(join(work, 'grow/data.bin'), randomBytes(16 * MIB));
    const limited = { ...env, BACKUP_DIR: join(work, 'grow-backups'), MEDIA_PATHS: `grow:${join(work, 'grow')}`, S3_MAX_PARTS: '3' };
    s3.requests.length = 0;
    const r = await runCli(['backup'], limited);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/grow\.tar\.gz outgrew 15728640 bytes \(3 parts of 5242880\); it will be uploaded from disk by the next run/);
    expect(s3.requests.some((q) => q.method === 'DELETE' && /grow\.tar\.gz\?uploadId=/.test(q.url) && q.status === 204)).toBe(true);
    expect(s3.requests.filter((q) => /grow\.tar\.gz\?.*partNumber=4/.test(q.url))).toEqual([]);
    const [grown] = (await readdir(join(work, 'grow-backups/yearly'))).map((id) => `yearly/${id}`);
    // The next run knows the size: its parts are large enough, and the failed run goes up from disk.
    const next = await runCli(['backup'], limited);
    expect(next.stderr).not.toMatch(/"level":50/);
    expect(next.exitCode).toBe(0);
    expect((await readJson<Manifest>(join(work, 'grow-backups', grown!, 'manifest.json'))).offsite?.state).toBe('complete');
    expect(await s3.keys()).toContain(`prod/app/${grown}/grow.tar.gz`);
  });

  it('a pg_dump that dies mid-way aborts its multipart upload too: no orphan parts, no objects', async () => {
    const keysBefore = await s3.keys();
    s3.requests.length = 0;
    const bin = await wrapperBin(join(work, 'dying-bin'), { dieAfterBytes: 40_000 });
    const r = await runCli(['backup'], { ...env, PG_BIN_DIR: bin });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/pg_dump of database app failed: simulated crash/);
    expect(await s3.keys()).toEqual(keysBefore);
    // A later source failing: the dump already uploaded is deleted again with the failed run.
    const late = await runCli(['backup'], { ...env, MEDIA_PATHS: `${env.MEDIA_PATHS},gone:/nonexistent/folder` });
    expect(late.exitCode).toBe(1);
    expect(late.stderr).toMatch(/media folder gone: \/nonexistent\/folder does not exist/);
    expect(s3.requests.some((q) => q.method === 'POST' && q.url.includes('delete'))).toBe(true);
    expect(await s3.keys()).toEqual(keysBefore);
  });

  it('a missing bucket or denied access: one clear line, the local run still kept', async () => {
    const missing = await runCli(['backup'], { ...env, S3_BUCKET: 'no-such-bucket' });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/backup-sidecar: not offsite: S3 checking bucket no-such-bucket failed: bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+: create it or fix S3_BUCKET/);
    s3.deny();
    try {
      const denied = await runCli(['backup'], env);
      expect(denied.exitCode).toBe(1);
      expect(denied.stderr).toMatch(/backup-sidecar: not offsite: S3 checking bucket backups failed: access denied to bucket "backups" at .*check the credentials/);
      const listing = await runCli(['list', '--remote'], env);
      expect(listing.exitCode).toBe(1);
      expect(listing.stderr).toMatch(/^backup-sidecar: S3 listing s3:\/\/backups\/prod\/app failed: access denied/m);
    } finally {
      s3.allow();
    }
  });
});

describe('many keys: paging and batched deletes', () => {
  const prefix = 'many';
  const manyEnv = () => ({ ...env, BACKUP_DIR: join(work, 'many-backups'), S3_PREFIX: prefix, BACKUP_KEEP_DAYS: '1', BACKUP_KEEP_WEEKS: '0', BACKUP_KEEP_MONTHS: '0', BACKUP_KEEP_YEARS: '0' });
  const foreign = [`${prefix}/daily/notes.txt`, `${prefix}/daily/20200101T000000Z/README.md`, `${prefix}/other/20200101T000000Z/app.dump`, 'outside/daily/20200101T000000Z/app.dump'];

  beforeAll(async () => {
    // 650 old daily runs of two objects each (1300 keys), plus keys that are not ours.
    const start = Date.UTC(2020, 0, 1);
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 650; i++) {
      const id = new Date(start + i * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
      puts.push(put(`${prefix}/daily/${id}/app.dump`, 'x'), put(`${prefix}/daily/${id}/manifest.json`, '{}'));
    }
    for (const key of foreign) puts.push(put(key, 'not ours'));
    await Promise.all(puts);
  });

  it('list --remote pages through more than 1000 keys', async () => {
    const r = await runCli(['list', '--remote', '--json'], manyEnv());
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(650);
  });

  it('prune --dry-run reports, prune deletes more than 1000 keys in batches, never a foreign key nor the newest run', async () => {
    const backup = await runCli(['backup', '--tier', 'daily'], { ...manyEnv(), BACKUP_KEEP_DAYS: '-1' });
    expect(backup.exitCode).toBe(0);
    const dry = await runCli(['prune', '--dry-run'], manyEnv());
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/s3:\/\/\S+\s+daily\s+20200101T000000Z\s+would remove\s+daily: older than 1 day before the newest run/);
    expect(dry.stdout).toMatch(/s3:\/\/\S+\s+daily\s+\d+T\d+Z\s+keep\s+the newest complete run/);
    expect((await s3.keys()).filter((k) => k.startsWith(`${prefix}/`)).length).toBe(1300 + 3 + 3);

    s3.requests.length = 0;
    const r = await runCli(['prune'], manyEnv());
    expect(r.exitCode).toBe(0);
    expect(s3.requests.filter((q) => q.method === 'POST' && q.url.includes('delete')).length).toBe(2);
    const left = await s3.keys();
    for (const key of foreign) expect(left).toContain(key);
    expect(left.filter((k) => k.startsWith(`${prefix}/daily/2020`))).toEqual([`${prefix}/daily/20200101T000000Z/README.md`]);
    const newest = backup.stdout.match(/daily\/(\d{8}T\d{6}Z)/)![1];
    expect(left.filter((k) => k.includes(newest!))).toEqual(['app.dump.zst', 'manifest.json', 'uploads.tar.gz'].map((f) => `${prefix}/daily/${newest}/${f}`));
  });
});

describe('lifecycle rules', () => {
  it('prints rules per tier prefix and an abort rule; --apply keeps the bucket\'s other rules', async () => {
    const lcEnv = { ...env, S3_TRANSITION_DAYS: '30', BACKUP_KEEP_YEARS: '2' };
    const printed = await runCli(['lifecycle'], lcEnv);
    expect(printed.exitCode).toBe(0);
    const { Rules } = JSON.parse(printed.stdout) as { Rules: { ID: string; Filter: { Prefix: string }; Expiration?: { Days: number }; Transitions?: unknown[] }[] };
    expect(Rules.map((r) => [r.ID, r.Filter.Prefix, r.Expiration?.Days, r.Transitions?.length ?? 0])).toEqual([
      ['backup-sidecar:prod/app:daily', 'prod/app/daily/', 15, 0],
      ['backup-sidecar:prod/app:weekly', 'prod/app/weekly/', 42, 0],
      ['backup-sidecar:prod/app:monthly', 'prod/app/monthly/', 224, 1],
      ['backup-sidecar:prod/app:yearly', 'prod/app/yearly/', 1105, 1],
      ['backup-sidecar:prod/app:abort-incomplete-uploads', 'prod/app/', undefined, 0],
    ]);

    await s3.client.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: s3.bucket,
        LifecycleConfiguration: { Rules: [{ ID: 'someone-elses-rule', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } }] },
      }),
    );
    const applied = await runCli(['lifecycle', '--apply'], lcEnv);
    expect(applied.exitCode).toBe(0);
    expect(applied.stdout).toMatch(/applied 5 rules to s3:\/\/backups \(1 other rules kept\)/);
    const again = await runCli(['lifecycle', '--apply'], lcEnv);
    expect(again.stdout).toMatch(/\(1 other rules kept\)/);
    const stored = await s3.client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: s3.bucket }));
    expect(stored.Rules?.map((r) => r.ID).sort()).toEqual([...Rules.map((r) => r.ID), 'someone-elses-rule'].sort());
  });
});

describe('secrets', () => {
  it('never shows the S3 secret key: not in logs at trace level, not in print-config, not in manifests', async () => {
    const r = await runCli(['backup'], { ...env, LOG_LEVEL: 'trace' });
    expect(r.exitCode).toBe(0);
    const config = await runCli(['print-config'], env);
    for (const text of [r.stdout, r.stderr, config.stdout, config.stderr]) expect(text).not.toContain(S3_SECRET);
    for (const run of await localRuns()) expect(await readFile(join(env.BACKUP_DIR!, run, 'manifest.json'), 'utf8')).not.toContain(S3_SECRET);
  });
});
