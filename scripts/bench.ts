/**
 * `npm run bench`: backup-sidecar side by side with its peers' own methods, on one database it fills
 * with realistic mixed data (random bytes, text, JSON, indexes; BENCH_SIZES_MB, default 1024), in one
 * process, BENCH_ROUNDS (default 3) interleaved rounds, medians:
 *
 *   floor   pg_dump -Fc -Z0 > /dev/null                what PostgreSQL can stream
 *   bare    pg_dump -Fc -f file                        pg_dump's own default compression
 *   pbl     pg_dump -Z1 -f file.sql.gz                 prodrigestivill/docker-postgres-backup-local (backup.sh, its README's -Z1)
 *   pbs3    pg_dump -Fc > file, then upload            eeshugerman/postgres-backup-s3 (backup.sh: pg_dump, then aws s3 cp)
 *   vol     backup-sidecar backup, volume only
 *   s3      backup-sidecar backup, volume + S3 (fauxqs, in its own process, storing on disk)
 *   node    backup-sidecar backup started as `node dist/cli.js` (its peak RSS)
 *   age     backup-sidecar backup, volume only, encrypted with age (ENCRYPTION_RECIPIENTS)
 *   r-pbl   zcat file.sql.gz | psql, into an empty database   the peer's restore (no safety net)
 *   r-keep  backup-sidecar restore latest --yes, RESTORE_SAFETY=keep
 *   r-dump  backup-sidecar restore latest --yes (default: a safety dump first)
 *   r-none  backup-sidecar restore latest --yes --no-safety-backup
 *   many-1  backup-sidecar backup of 4 databases of a quarter of the size each, POSTGRES_PARALLEL=1
 *   many-p  the same, POSTGRES_PARALLEL=BENCH_PARALLEL (default 2)
 *
 * BENCH_ONLY=vol,s3,node runs only those (a memory check at 5 GiB: BENCH_SIZES_MB=5120 BENCH_ROUNDS=1).
 * It prints wall times, artifact sizes, our peak RSS (logged by the CLI itself: pg_dump, zstd and
 * pg_restore are other processes), the goals of issue 14 and whether each holds; exit 1 when one does not.
 */
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { execa } from 'execa';
import { CLI, tempDir } from '../test/support/cli.ts';
import { PG15_BIN, freePort, startPostgres } from '../test/support/postgres-server.ts';

const sizes = (process.env.BENCH_SIZES_MB ?? '1024').split(',').map(Number);
const rounds = Number(process.env.BENCH_ROUNDS ?? '3');
const MIB = 1024 * 1024;
const parallel = process.env.BENCH_PARALLEL ?? '2';
const only = process.env.BENCH_ONLY?.split(',');

const work = await tempDir('bench');
const recipient = await identityToRecipient(await generateX25519Identity());
const pg = await startPostgres();
const s3Port = await freePort();
// In its own process, storing on disk: its memory and CPU are not ours, as with a real store.
const s3 = execa(
  process.execPath,
  ['--input-type=module', '-e', `const { startFauxqs } = await import('fauxqs'); await startFauxqs({ port: ${s3Port}, host: '127.0.0.1', logger: false, s3StorageDir: ${JSON.stringify(join(work, 's3'))} });`],
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
const pgEnv = { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password };
const bin = (tool: string) => join(PG15_BIN, tool);

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
const s = (ms: number) => (ms / 1000).toFixed(1);
const mib = (bytes: number) => `${(bytes / MIB).toFixed(0)} MiB`;

/**
 * Mixed data as applications have it: per row a few scalars, a short text of words (compresses well),
 * a JSON document with repeated keys (compresses very well), and every fourth row 300 random bytes as
 * base64 (barely compresses); two secondary indexes.
 */
async function fill(db: string, megabytes: number): Promise<number> {
  await pg.sql('postgres', `CREATE DATABASE ${db};`);
  const rows = Math.round((megabytes * MIB) / 560);
  await pg.sql(
    db,
    `CREATE EXTENSION pgcrypto;
     CREATE TABLE events (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, user_id int NOT NULL, kind text NOT NULL,
                          body text NOT NULL, doc jsonb NOT NULL, blob text);
     INSERT INTO events
       SELECT i, now() - i * interval '1 second', (random() * 100000)::int, (ARRAY['view','click','buy','login'])[1 + i % 4],
              (SELECT string_agg((ARRAY['order','shipped','customer','invoice','paid','refund','address','street','city','the','a','of'])[1 + ((i * 7 + w * 13) % 12)], ' ') FROM generate_series(1, 12 + i % 20) w),
              jsonb_build_object('user', jsonb_build_object('id', i % 100000, 'name', 'user' || (i % 100000), 'plan', (ARRAY['free','pro','team'])[1 + i % 3]),
                                 'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 5000), 'qty', 1 + i % 5, 'price', round((random() * 100)::numeric, 2))),
                                 'ip', '10.' || (i % 256) || '.' || (i % 97) || '.' || (i % 13), 'agent', 'Mozilla/5.0 (X11; Linux x86_64)'),
              CASE WHEN i % 4 = 0 THEN encode(gen_random_bytes(300), 'base64') END
         FROM generate_series(1, ${rows}) i;
     CREATE INDEX ON events (user_id, created_at);
     CREATE INDEX ON events (kind);
     VACUUM ANALYZE events;`,
  );
  return Number(await pg.sql(db, `SELECT pg_database_size('${db}')`));
}

interface Sample {
  ms: number;
  /** Artifact bytes. */
  bytes?: number;
  /** Our process's peak RSS, MiB, from its own log. */
  rss?: number;
}

/** Runs the CLI and reads its own peak RSS from the log (LOG_LEVEL=debug: every command logs it at exit). */
async function sidecar(args: string[], env: Record<string, string>, viaNode = false): Promise<number | undefined> {
  const command = viaNode ? execa(process.execPath, [CLI, ...args], { env, extendEnv: false, reject: false }) : execa(CLI, args, { env, extendEnv: false, reject: false });
  const r = await command;
  if (r.exitCode !== 0) throw new Error(`backup-sidecar ${args.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  const rss = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { maxRssMiB?: number }).findLast((l) => l.maxRssMiB !== undefined);
  return rss?.maxRssMiB;
}

async function runSize(dir: string): Promise<number> {
  let total = 0;
  for (const tier of await readdir(dir).catch(() => [])) {
    if (tier.startsWith('.') || tier === 'pre-restore') continue;
    for (const run of await readdir(join(dir, tier))) for (const f of await readdir(join(dir, tier, run))) if (!f.startsWith('manifest')) total += (await stat(join(dir, tier, run, f))).size;
  }
  return total;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

try {
  await waitForS3();
  let failed = false;
  for (const mb of sizes) {
    const db = `bench_${mb}`;
    const began = performance.now();
    const bytes = await fill(db, mb);
    const many = [1, 2, 3, 4].map((i) => `${db}_part${i}`);
    if (only === undefined || only.some((o) => o.startsWith('many'))) for (const part of many) await fill(part, mb / 4);
    line(`\n${db}: ${mib(bytes)} in PostgreSQL (filled in ${s(performance.now() - began)} s), ${rounds} interleaved rounds, medians`);
    const file = join(work, `${db}.dump`);
    const sql = join(work, `${db}.sql.gz`);
    const volume = join(work, 'volume');
    const ours = {
      ...pgEnv,
      PATH: process.env.PATH ?? '',
      POSTGRES_HOST: pg.host,
      POSTGRES_PORT: String(pg.port),
      POSTGRES_USER: pg.user,
      POSTGRES_PASSWORD: pg.password,
      POSTGRES_DB: db,
      BACKUP_DIR: volume,
      LOG_LEVEL: 'debug',
      BACKUP_KEEP_PRE_RESTORE: '1',
    };
    const withS3 = (prefix: string) => ({ ...ours, BACKUP_DIR: join(work, 'volume-s3'), S3_BUCKET: 'bench', S3_ENDPOINT: endpoint, S3_PREFIX: prefix, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench-secret' });

    const scenarios: Record<string, () => Promise<Omit<Sample, 'ms'>>> = {
      floor: async () => {
        await execa(bin('pg_dump'), ['-Fc', '-Z0', db], { env: pgEnv, stdout: 'ignore' });
        return {};
      },
      bare: async () => {
        await rm(file, { force: true });
        await execa(bin('pg_dump'), ['-Fc', '-f', file, db], { env: pgEnv });
        return { bytes: (await stat(file)).size };
      },
      pbl: async () => {
        await rm(sql, { force: true });
        await execa(bin('pg_dump'), ['-Z1', '-f', sql, db], { env: pgEnv });
        return { bytes: (await stat(sql)).size };
      },
      pbs3: async () => {
        await rm(file, { force: true });
        await execa(bin('pg_dump'), ['--format=custom', '-f', file, db], { env: pgEnv });
        // aws s3 cp's defaults: 8 MiB parts, 10 requests at once.
        await new Upload({ client, params: { Bucket: 'bench', Key: `pbs3/${Date.now()}.dump`, Body: createReadStream(file) }, partSize: 8 * MIB, queueSize: 10 }).done();
        return { bytes: (await stat(file)).size };
      },
      vol: async () => {
        await rm(volume, { recursive: true, force: true });
        const rss = await sidecar(['backup'], ours);
        return { rss, bytes: await runSize(volume) };
      },
      s3: async () => {
        await rm(join(work, 'volume-s3'), { recursive: true, force: true });
        return { rss: await sidecar(['backup'], withS3(`p${Date.now()}`)) };
      },
      node: async () => {
        await rm(join(work, 'volume-node'), { recursive: true, force: true });
        return { rss: await sidecar(['backup'], { ...ours, BACKUP_DIR: join(work, 'volume-node') }, true) };
      },
      age: async () => {
        await rm(join(work, 'volume-age'), { recursive: true, force: true });
        return { rss: await sidecar(['backup'], { ...ours, BACKUP_DIR: join(work, 'volume-age'), ENCRYPTION_RECIPIENTS: recipient }) };
      },
      'r-pbl': async () => {
        await pg.sql('postgres', 'DROP DATABASE IF EXISTS pbl_target; CREATE DATABASE pbl_target;');
        await execa('sh', ['-c', `zcat "$1" | "$2" -X -q -v ON_ERROR_STOP=1 -d pbl_target > /dev/null`, 'sh', sql, bin('psql')], { env: pgEnv });
        return {};
      },
      'many-1': async () => {
        await rm(join(work, 'volume-many'), { recursive: true, force: true });
        return { rss: await sidecar(['backup'], { ...ours, BACKUP_DIR: join(work, 'volume-many'), POSTGRES_DB: many.join(','), POSTGRES_PARALLEL: '1' }) };
      },
      'many-p': async () => {
        await rm(join(work, 'volume-many'), { recursive: true, force: true });
        return { rss: await sidecar(['backup'], { ...ours, BACKUP_DIR: join(work, 'volume-many'), POSTGRES_DB: many.join(','), POSTGRES_PARALLEL: parallel }) };
      },
      'r-keep': async () => ({ rss: await sidecar(['restore', 'latest', '--yes'], { ...ours, RESTORE_SAFETY: 'keep' }) }),
      'r-dump': async () => ({ rss: await sidecar(['restore', 'latest', '--yes'], ours) }),
      'r-none': async () => ({ rss: await sidecar(['restore', 'latest', '--yes', '--no-safety-backup'], ours) }),
    };
    const samples: Record<string, Sample[]> = {};
    for (let round = 1; round <= rounds; round++) {
      for (const [name, run] of Object.entries(scenarios).filter(([n]) => only === undefined || only.includes(n))) {
        const t = performance.now();
        const extra = await run();
        (samples[name] ??= []).push({ ms: performance.now() - t, ...extra });
      }
      // Safety backups of restores pile up in pre-restore/: not part of what is measured.
      await rm(join(volume, 'pre-restore'), { recursive: true, force: true });
      line(`  round ${round}: ${Object.entries(samples).map(([n, xs]) => `${n} ${s(xs.at(-1)!.ms)}`).join(', ')}`);
    }
    const t = (name: string) => median(samples[name]!.map((x) => x.ms));
    const size = (name: string) => median(samples[name]!.map((x) => x.bytes ?? 0));
    const rss = (name: string) => Math.max(...samples[name]!.map((x) => x.rss ?? 0));
    line('');
    line('| what | time s | artifact | our peak RSS |');
    line('|---|---|---|---|');
    const row = (name: string, what: string) => samples[name] !== undefined && line(`| ${what} | ${s(t(name))} | ${size(name) > 0 ? mib(size(name)) : ''} | ${rss(name) > 0 ? `${rss(name)} MiB` : ''} |`);
    row('floor', 'floor: `pg_dump -Fc -Z0 > /dev/null`');
    row('bare', 'bare `pg_dump -Fc -f file`');
    row('pbl', 'docker-postgres-backup-local style `pg_dump -Z1` (plain SQL)');
    row('pbs3', 'postgres-backup-s3 style: `pg_dump -Fc`, then upload');
    row('vol', 'backup-sidecar backup, volume only');
    row('s3', 'backup-sidecar backup, volume + S3');
    row('node', 'backup-sidecar backup as `node dist/cli.js`');
    row('age', 'backup-sidecar backup, volume only, encrypted (age)');
    row('r-pbl', 'restore: `zcat | psql` (docker-postgres-backup-local, no safety net)');
    row('r-keep', 'restore: backup-sidecar, `RESTORE_SAFETY=keep`');
    row('r-dump', 'restore: backup-sidecar, default (safety dump first)');
    row('r-none', 'restore: backup-sidecar, `--no-safety-backup`');
    row('many-1', '4 databases of a quarter each, `POSTGRES_PARALLEL=1`');
    row('many-p', `4 databases of a quarter each, \`POSTGRES_PARALLEL=${parallel}\``);
    const all = Object.keys(samples);
    const checks: [string, string[], () => [boolean, string]][] = [
      ['backup, volume + S3 <= 0.5x bare pg_dump -Fc', ['s3', 'bare'], () => [t('s3') <= 0.5 * t('bare'), `${(t('s3') / t('bare')).toFixed(2)}x`]],
      ['backup, volume + S3 <= the pbl-style -Z1 dump', ['s3', 'pbl'], () => [t('s3') <= t('pbl'), `${s(t('s3'))} s vs ${s(t('pbl'))} s`]],
      ['artifact <= bare pg_dump -Fc', ['vol', 'bare'], () => [size('vol') <= size('bare'), `${mib(size('vol'))} vs ${mib(size('bare'))}`]],
      ['backup, volume only <= 1.15x the floor', ['vol', 'floor'], () => [t('vol') <= 1.15 * t('floor'), `${(t('vol') / t('floor')).toFixed(2)}x`]],
      ['restore, RESTORE_SAFETY=keep <= zcat | psql', ['r-keep', 'r-pbl'], () => [t('r-keep') <= t('r-pbl'), `${s(t('r-keep'))} s vs ${s(t('r-pbl'))} s`]],
      ['restore, default <= 1.5x --no-safety-backup', ['r-dump', 'r-none'], () => [t('r-dump') <= 1.5 * t('r-none'), `${(t('r-dump') / t('r-none')).toFixed(2)}x`]],
      [`4 databases: POSTGRES_PARALLEL=${parallel} well below one at a time (<= 0.8x)`, ['many-p', 'many-1'], () => [t('many-p') <= 0.8 * t('many-1'), `${(t('many-p') / t('many-1')).toFixed(2)}x`]],
      ['peak RSS < 150 MiB, every command and entry point', [], () => [Math.max(...all.map(rss)) < 150, `${Math.max(...all.map(rss))} MiB`]],
    ];
    const goals = checks.filter(([, names]) => names.every((n) => all.includes(n))).map(([goal, , check]) => [goal, ...check()] as const);
    line('');
    for (const [goal, ok, value] of goals) line(`  ${ok ? 'met    ' : 'MISSED '} ${goal}: ${value}`);
    failed ||= goals.some(([, ok]) => !ok);
    await rm(file, { force: true });
    await rm(sql, { force: true });
    await pg.sql('postgres', `DROP DATABASE IF EXISTS pbl_target;`);
    // Kept copies of RESTORE_SAFETY=keep, then the database itself.
    for (const name of (await pg.sql('postgres', `SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '${db}%'`)).split(',').filter(Boolean)) {
      await pg.sql('postgres', `DROP DATABASE "${name}" WITH (FORCE);`);
    }
  }
  process.exitCode = failed ? 1 : 0;
} finally {
  client.destroy();
  s3.kill();
  await s3.catch(() => undefined);
  await pg.stop();
  await rm(work, { recursive: true, force: true });
}
