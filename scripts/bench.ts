/**
 * `npm run bench`: how much a backup costs beyond pg_dump itself, and how much memory it takes.
 *
 * For each database size (BENCH_SIZES_MB, default "256,1024") it fills a throwaway PostgreSQL 15 with
 * realistic rows whose payload is random base64 (compresses to about 75%), starts the S3 test server
 * (fauxqs) as a separate process storing objects on disk, and times, best of BENCH_REPEAT (default 2):
 *   (a) bare `pg_dump -Fc -f file`
 *   (b) dump to a file, then upload it (what eeshugerman/postgres-backup-s3 does)
 *   (c) backup-sidecar streaming to the volume and S3 at once
 *   (v) backup-sidecar to the volume only
 *   (e) backup-sidecar to the volume only, encrypting with age (ENCRYPTION_RECIPIENTS)
 * It prints wall times, the ratios v/a, c/a, c/b and e/v (the cost of encryption), and the peak RSS of the backup-sidecar process
 * alone (it logs its own maxRSS; pg_dump is a separate process). Targets: v/a <= 1.05, c/a <= 1.10,
 * peak RSS < 150 MB at every size.
 */
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { execa } from 'execa';
import { CLI, tempDir } from '../test/support/cli.ts';
import { PG15_BIN, freePort, startPostgres } from '../test/support/postgres-server.ts';

const sizes = (process.env.BENCH_SIZES_MB ?? '256,1024').split(',').map(Number);
const repeat = Number(process.env.BENCH_REPEAT ?? '2');
const MIB = 1024 * 1024;

const work = await tempDir('bench');
const recipient = await identityToRecipient(await generateX25519Identity());
const pg = await startPostgres();
const s3Port = await freePort();
const s3Dir = join(work, 's3');
// In its own process, storing on disk: its memory and CPU are not ours, as with a real store.
const s3 = execa(
  process.execPath,
  ['--input-type=module', '-e', `const { startFauxqs } = await import('fauxqs'); await startFauxqs({ port: ${s3Port}, host: '127.0.0.1', logger: false, s3StorageDir: ${JSON.stringify(s3Dir)} });`],
  { reject: false, stdio: 'ignore' },
);
const endpoint = `http://127.0.0.1:${s3Port}`;
const client = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});

async function waitForS3(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('the S3 test server (fauxqs) did not start');
}

const line = (text: string) => process.stdout.write(`${text}\n`);
const seconds = (ms: number) => (ms / 1000).toFixed(2);

async function fill(db: string, megabytes: number): Promise<number> {
  await pg.sql('postgres', `CREATE DATABASE ${db};`);
  // About 520 bytes a row on disk: a few scalar columns and a 400-character random base64 payload.
  const rows = Math.round((megabytes * MIB) / 520);
  await pg.sql(
    db,
    `CREATE EXTENSION pgcrypto;
     CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, user_id int NOT NULL, kind text NOT NULL, payload text NOT NULL);
     INSERT INTO events SELECT i, now() - i * interval '1 second', (random() * 100000)::int, (ARRAY['view','click','buy','login'])[1 + i % 4], encode(gen_random_bytes(300), 'base64')
       FROM generate_series(1, ${rows}) i;
     VACUUM ANALYZE events;`,
  );
  return Number(await pg.sql(db, `SELECT pg_database_size('${db}')`));
}

interface Sample {
  ms: number;
  /** Peak RSS of the backup-sidecar process, MiB. */
  rss?: number;
  /** From the start of pg_dump to the dump fully written to the volume, ms. */
  dumpPhase?: number;
  /** Then: the last parts and CompleteMultipartUpload; then the stored-size check and sha256 copy. */
  complete?: number;
  seal?: number;
}

async function timed(run: () => Promise<Omit<Sample, 'ms'>>): Promise<Sample> {
  let best: Sample | undefined;
  for (let i = 0; i < repeat; i++) {
    const began = performance.now();
    const extra = await run();
    const ms = performance.now() - began;
    if (best === undefined || ms < best.ms) best = { ms, ...extra, rss: Math.max(extra.rss ?? 0, best?.rss ?? 0) || undefined };
  }
  return best!;
}

/** Runs the CLI as it is installed (through its shebang, with its V8 flags) and reads its own log. */
async function sidecar(db: string, dir: string, withS3: boolean, extra: Record<string, string> = {}): Promise<Omit<Sample, 'ms'>> {
  await rm(dir, { recursive: true, force: true });
  const env = {
    ...pg.env,
    PATH: process.env.PATH ?? '',
    POSTGRES_DB: db,
    BACKUP_DIR: dir,
    LOG_LEVEL: 'debug',
    ...(withS3 ? { S3_BUCKET: 'bench', S3_ENDPOINT: endpoint, S3_PREFIX: `${db}-${Date.now()}`, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench-secret' } : {}),
    ...extra,
  };
  const r = await execa(CLI, ['backup'], { env, extendEnv: false, reject: false });
  if (r.exitCode !== 0) throw new Error(`backup failed: ${r.stderr.slice(-2000)}`);
  const logs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; time: number; maxRssMiB?: number });
  const at = (msg: string) => logs.find((l) => l.msg === msg)?.time;
  const [dumpStart, written, complete, sealed] = ['starting pg_dump', 'written to the volume; completing the upload', 'upload complete', `postgres ${db} done`].map(at);
  return {
    rss: logs.find((l) => l.msg === 'backup finished')?.maxRssMiB,
    dumpPhase: written === undefined ? sealed! - dumpStart! : written - dumpStart!,
    complete: complete === undefined ? undefined : complete - written!,
    seal: complete === undefined ? undefined : sealed! - complete,
  };
}

try {
  await waitForS3();
  const pgDump = join(PG15_BIN, 'pg_dump');
  const pgEnv = { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password };
  const results: string[] = [];
  for (const mb of sizes) {
    const db = `bench_${mb}`;
    const began = performance.now();
    const bytes = await fill(db, mb);
    line(`\n${db}: ${(bytes / MIB).toFixed(0)} MiB in PostgreSQL (filled in ${seconds(performance.now() - began)} s)`);
    const file = join(work, `${db}.dump`);

    const a = await timed(async () => {
      await rm(file, { force: true });
      await execa(pgDump, ['-Fc', '-f', file, db], { env: pgEnv });
      return {};
    });
    const dumpSize = (await stat(file)).size;
    line(`  (a) pg_dump -Fc -f file             ${seconds(a.ms)} s   dump ${(dumpSize / MIB).toFixed(0)} MiB`);
    const b = await timed(async () => {
      await rm(file, { force: true });
      await execa(pgDump, ['-Fc', '-f', file, db], { env: pgEnv });
      await new Upload({ client, params: { Bucket: 'bench', Key: `${db}/${Date.now()}.dump`, Body: createReadStream(file) }, partSize: 8 * MIB, queueSize: 4 }).done();
      return {};
    });
    line(`  (b) dump, then upload               ${seconds(b.ms)} s`);
    const c = await timed(() => sidecar(db, join(work, 'volume-c'), true));
    line(`  (c) backup-sidecar, volume + S3     ${seconds(c.ms)} s   peak RSS ${c.rss} MiB`);
    line(`      of which: dump streamed to volume and S3 ${seconds(c.dumpPhase!)} s, last parts + complete ${seconds(c.complete!)} s, size check + sha256 copy ${seconds(c.seal!)} s`);
    const v = await timed(() => sidecar(db, join(work, 'volume-v'), false));
    line(`  (v) backup-sidecar, volume only     ${seconds(v.ms)} s   peak RSS ${v.rss} MiB`);
    const e = await timed(() => sidecar(db, join(work, 'volume-e'), false, { ENCRYPTION_RECIPIENTS: recipient }));
    line(`  (e) backup-sidecar, volume, age     ${seconds(e.ms)} s   peak RSS ${e.rss} MiB   ${(dumpSize / MIB / (e.dumpPhase! / 1000)).toFixed(0)} MiB/s through the dump phase (pg_dump sets the pace)`);
    const ratio = (x: number, y: number) => (x / y).toFixed(2);
    line(`  v/a ${ratio(v.ms, a.ms)} (target <= 1.05)   c/a ${ratio(c.ms, a.ms)} (target <= 1.10)   c/b ${ratio(c.ms, b.ms)}   a/b ${ratio(a.ms, b.ms)}   dump phase of (c) / a ${ratio(c.dumpPhase!, a.ms)}   e/v ${ratio(e.ms, v.ms)}`);
    results.push(
      `| ${(bytes / MIB).toFixed(0)} MiB (dump ${(dumpSize / MIB).toFixed(0)} MiB) | ${seconds(a.ms)} | ${seconds(b.ms)} | ${seconds(c.ms)} (${seconds(c.dumpPhase!)} + ${seconds(c.complete!)} + ${seconds(c.seal!)}) | ${seconds(v.ms)} | ${seconds(e.ms)} | ${ratio(v.ms, a.ms)} | ${ratio(c.ms, a.ms)} | ${ratio(c.ms, b.ms)} | ${ratio(e.ms, v.ms)} | ${v.rss} / ${c.rss} / ${e.rss} MiB |`,
    );
    await rm(file, { force: true });
    await pg.sql('postgres', `DROP DATABASE ${db};`);
  }
  line('\n| database | (a) s | (b) s | (c) s (dump + complete + seal) | (v) s | (e) s | v/a | c/a | c/b | e/v | peak RSS (v / c / e) |');
  line('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) line(r);
} finally {
  client.destroy();
  s3.kill();
  await s3.catch(() => undefined);
  await pg.stop();
  await rm(work, { recursive: true, force: true });
}
