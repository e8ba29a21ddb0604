import { mkdir, readFile, readdir, rm, symlink, writeFile, lstat, readlink, stat, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/manifest.ts';
import { CLI, filesBelow, readJson, runCli, tempDir, ROOT } from './support/cli.ts';
import { wrapperBin } from './support/pg-wrappers.ts';
import { startPostgres, type TestServer } from './support/postgres-server.ts';

let pg: TestServer;
let work: string;
let env: Record<string, string>;
const sample = () => readFile(join(ROOT, 'test/fixtures/sample.sql'), 'utf8');

/** A snapshot of a database's contents that any difference in data changes. */
async function fingerprint(db: string): Promise<string> {
  return pg.sql(
    db,
    `SELECT (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM public.users u),
            (SELECT md5(string_agg(o.id || ':' || o.total, ',' ORDER BY o.id)) FROM shop.orders o),
            (SELECT string_agg(k, ',' ORDER BY k) FROM shop."Odd Name"),
            (SELECT count(*) FROM public.events),
            (SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',' ORDER BY oid) FROM pg_largeobject_metadata),
            (SELECT last_value FROM public.users_id_seq);`,
  );
}

async function makeMedia(dir: string): Promise<void> {
  await mkdir(join(dir, 'nested/deeper/deepest'), { recursive: true });
  await mkdir(join(dir, 'empty folder'));
  await writeFile(join(dir, 'a.txt'), 'alpha\n');
  await writeFile(join(dir, 'nested/deeper/deepest/b.bin'), Buffer.alloc(100_000, 7));
  await writeFile(join(dir, 'nested/ünï cödé — name.txt'), 'odd\n');
  await writeFile(join(dir, 'nested/new\nline.txt'), 'newline in name\n');
  await writeFile(join(dir, '-starts-with-dash'), 'dash\n');
  await writeFile(join(dir, 'skip.tmp'), 'excluded\n');
  await chmod(join(dir, 'a.txt'), 0o640);
  await symlink('a.txt', join(dir, 'link-to-a'));
  await symlink('/nonexistent/target', join(dir, 'dangling'));
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    const info = await lstat(path);
    if (info.isSymbolicLink()) out.push(`${name} -> ${await readlink(path)}`);
    else if (info.isDirectory()) out.push(`${name}/`);
    else out.push(`${name} ${(info.mode & 0o777).toString(8)} ${(await readFile(path)).toString('base64').slice(0, 40)}`);
  }
  return out;
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.sql('postgres', 'CREATE DATABASE app; CREATE DATABASE "other db"; CREATE ROLE appuser LOGIN;');
  await pg.sql('app', await sample());
  await pg.sql('app', `GRANT SELECT ON shop.orders TO appuser; REVOKE CONNECT ON DATABASE app FROM PUBLIC; GRANT CONNECT ON DATABASE app TO appuser;`);
  await pg.sql('other db', 'CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 42);');
  work = await tempDir('rt');
  await makeMedia(join(work, 'uploads'));
  env = {
    ...pg.env,
    BACKUP_DIR: join(work, 'backups'),
    POSTGRES_DB: 'app,other db,',
    MEDIA_PATHS: `uploads:${join(work, 'uploads')}`,
    MEDIA_EXCLUDE: '*.tmp',
    BACKUP_LABEL: 'v1.2.3 (rc)',
  };
});

afterAll(async () => {
  await pg?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('backup then restore, for real', () => {
  let runDir: string;
  let manifest: Manifest;
  let before: { app: string; media: string[] };

  it('backs up several databases and a media folder into one complete run', async () => {
    before = { app: await fingerprint('app'), media: await tree(join(work, 'uploads')) };
    const r = await runCli(['backup'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    runDir = r.stdout.trim().split(' ')[0]!;
    // The first run in an empty volume is the first of its year.
    expect(runDir).toMatch(/\/backups\/yearly\/\d{8}T\d{6}Z_v1\.2\.3-rc$/);
    expect((await filesBelow(join(work, 'backups'))).filter((f) => f !== '.status.json' && f !== '.history.jsonl')).toEqual(
      [`${runDir}/app.dump.zst`, `${runDir}/manifest.json`, `${runDir}/other%20db.dump.zst`, `${runDir}/uploads.tar.gz`].map((p) => p.slice(join(work, 'backups').length + 1)),
    );
    manifest = await readJson<Manifest>(join(runDir, 'manifest.json'));
    expect(manifest.label).toBe('v1.2.3 (rc)');
    expect(manifest.postgres?.clientChoice).toMatch(/same major/);
    const app = manifest.artifacts.find((a) => a.source === 'app');
    expect(app).toMatchObject({ kind: 'postgres', format: 'custom', largeObjects: 3 });
    expect(app?.kind === 'postgres' && app.rowCounts).toMatchObject({ 'public.users': 500, 'shop.orders': 2000, 'shop.Odd Name': 3, 'public.empty_table': 0 });
    const media = manifest.artifacts.find((a) => a.kind === 'media');
    expect(media).toMatchObject({ file: 'uploads.tar.gz', entries: before.media.length - 1, warnings: [] }); // skip.tmp excluded
    // Private files and folders, and no links in the volume.
    expect((await stat(runDir)).mode & 0o777).toBe(0o700);
    for (const f of await readdir(runDir)) expect((await lstat(join(runDir, f))).mode & 0o777).toBe(0o600);
  });

  it('lists and verifies the run', async () => {
    const list = await runCli(['list', '--json'], env);
    expect(list.exitCode).toBe(0);
    const runs = JSON.parse(list.stdout) as { id: string; tier: string; artifacts: unknown[] }[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ tier: 'yearly', id: manifest.runId });
    const table = await runCli(['list'], env);
    expect(table.stdout).toMatch(/^TIER\s+RUN\s+LABEL\s+AGE\s+SIZE\s+OFFSITE\s+DRILL\s+ARTIFACTS\nyearly\s+\d{8}T\d{6}Z_v1\.2\.3-rc\s+v1\.2\.3 \(rc\)/);
    const verify = await runCli(['verify', manifest.runId], env);
    expect(verify.stdout).toMatch(/all 3 artifacts verified/);
    expect(verify.exitCode).toBe(0);
  });

  it('refuses to restore without a terminal unless --yes, touching nothing', async () => {
    const r = await runCli(['restore', 'latest'], env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/needs a confirmation: run it on a terminal \(docker exec -it .*\) or add --yes/);
    expect(await readdir(join(work, 'backups'))).not.toContain('pre-restore');
  });

  it('restores the whole run after the data was damaged, with a safety backup', async () => {
    await pg.sql('app', `DELETE FROM shop.orders WHERE id > 100; UPDATE public.users SET name = 'damaged'; SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata;`);
    await pg.sql('other db', 'TRUNCATE t;');
    const damaged = await fingerprint('app');
    expect(damaged).not.toBe(before.app);
    await rm(join(work, 'uploads/a.txt'));
    await writeFile(join(work, 'uploads/leftover.txt'), 'must vanish');

    const r = await runCli(['restore', 'latest', '--yes'], env);
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/restored app\.dump\.zst into app: 6 tables and 2803 rows match the manifest, 3 large objects/);
    expect(r.stdout).toMatch(/restored uploads\.tar\.gz into .*uploads: 11 entries, as in the manifest/);
    expect(await fingerprint('app')).toBe(before.app);
    expect(await pg.sql('other db', 'SELECT count(*) FROM t')).toBe('42');
    const restoredTree = await tree(join(work, 'uploads'));
    expect(restoredTree).toEqual(before.media.filter((l) => !l.startsWith('skip.tmp')));
    // Database-level privileges and object grants survive the swap.
    expect(await pg.sql('postgres', `SELECT has_database_privilege('appuser', 'app', 'CONNECT'), has_database_privilege('public', 'app', 'CONNECT')`)).toBe('t|f');
    expect(await pg.sql('app', `SELECT has_table_privilege('appuser', 'shop.orders', 'SELECT')`)).toBe('t');
    // No scratch databases left behind.
    expect(await pg.sql('postgres', `SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database`)).toBe('app,other db,postgres,template0,template1');

    // The safety backup holds the damaged state and is itself restorable.
    const safety = /safety backup: (.*)/.exec(r.stdout)?.[1];
    expect(safety).toMatch(/\/pre-restore\/\d{8}T\d{6}Z$/);
    const safetyManifest = await readJson<Manifest>(join(safety!, 'manifest.json'));
    expect(safetyManifest.tier).toBe('pre-restore');
    expect(safetyManifest.artifacts.map((a) => a.file).sort()).toEqual(['app.dump.zst', 'other%20db.dump.zst', 'uploads.tar.gz']);
    const back = await runCli(['restore', join(safety!, 'app.dump.zst'), '--yes', '--no-safety-backup'], env);
    expect(back.exitCode).toBe(0);
    expect(await fingerprint('app')).toBe(damaged);
  });

  it('restores one dump by bare file name into another database, leaving the original alone', async () => {
    const original = await fingerprint('app');
    const r = await runCli(['restore', 'app.dump', '--yes', '--target-db', 'app_copy', '--jobs', '2'], env);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/no safety backup was needed/);
    expect(await fingerprint('app_copy')).toBe(before.app);
    expect(await fingerprint('app')).toBe(original);
  });

  it('refuses a corrupt dump before touching the database', async () => {
    const copy = join(work, 'corrupt-run');
    await mkdir(copy);
    for (const f of await readdir(runDir)) await writeFile(join(copy, f), await readFile(join(runDir, f)));
    const dump = await readFile(join(copy, 'app.dump.zst'));
    dump[Math.floor(dump.length / 2)]! ^= 0xff;
    await writeFile(join(copy, 'app.dump.zst'), dump);
    const fp = await fingerprint('app');
    const r = await runCli(['restore', join(copy, 'app.dump.zst'), '--yes'], env);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/app\.dump\.zst is damaged: its sha256 is [0-9a-f]{64} .* the manifest says [0-9a-f]{64} .*nothing was restored/);
    expect(await fingerprint('app')).toBe(fp);
    const v = await runCli(['verify', copy], env);
    expect(v.exitCode).toBe(1);
    expect(v.stdout).toMatch(/FAIL {2}app\.dump\.zst: sha256/);
  });

  it('keeps the database when the restored copy does not match the manifest (checksum fine)', async () => {
    // A manifest whose row count disagrees with its dump: the check on the scratch copy must fail the
    // restore and leave the database as it was.
    const copy = join(work, 'bad-content');
    await mkdir(copy);
    for (const f of await readdir(runDir)) await writeFile(join(copy, f), await readFile(join(runDir, f)));
    const m = await readJson<Manifest>(join(copy, 'manifest.json'));
    const app = m.artifacts.find((a) => a.source === 'app')!;
    if (app.kind === 'postgres') app.rowCounts['shop.orders'] = 1999;
    await writeFile(join(copy, 'manifest.json'), JSON.stringify(m));
    const fp = await fingerprint('app');
    const r = await runCli(['restore', join(copy, 'app.dump.zst'), '--yes', '--no-safety-backup'], env);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/the restored copy of app does not match the manifest, database app was not touched: table shop\.orders has 2000 rows, the manifest says 1999/);
    expect(await fingerprint('app')).toBe(fp);
    expect(await pg.sql('postgres', `SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_\\_restore\\_%'`)).toBe('0');
  });

  it('archives with zstd and restores into another folder', async () => {
    const zenv = { ...env, MEDIA_COMPRESSION: 'zstd', POSTGRES_DB: '', BACKUP_LABEL: '' };
    const r = await runCli(['backup'], zenv);
    expect(r.exitCode).toBe(0);
    const dir = r.stdout.trim().split(' ')[0]!;
    expect(await readdir(dir)).toEqual(['manifest.json', 'uploads.tar.zst']);
    const target = join(work, 'elsewhere');
    const back = await runCli(['restore', join(dir, 'uploads.tar.zst'), '--yes', '--target-dir', target], zenv);
    expect(back.exitCode).toBe(0);
    expect(await tree(target)).toEqual(await tree(join(work, 'uploads')));
  });
});

describe('live conditions', () => {
  it('a file that changes while it is archived is a warning, not a failure', async () => {
    const dir = join(work, 'busy');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'growing.log'), Buffer.alloc(30_000_000, 1));
    // A writer appends for the whole backup (bounded: it stops after 10 s at most).
    const writer = execa('sh', ['-c', `end=$(($(date +%s)+10)); while [ $(date +%s) -lt $end ]; do echo x >> '${join(dir, 'growing.log')}'; done`], { reject: false });
    try {
      const r = await runCli(['backup'], { ...env, POSTGRES_DB: '', MEDIA_PATHS: `busy:${dir}`, BACKUP_LABEL: 'busy' });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/busy: .*growing\.log: file changed as we read it/);
      const m = await readJson<Manifest>(join(r.stdout.trim().split(' ')[0]!, 'manifest.json'));
      expect(m.warnings).toEqual([expect.stringMatching(/^busy: .*growing\.log: file changed as we read it$/)]);
    } finally {
      writer.kill();
      await writer;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ends the sessions of a connected application and restores', async () => {
    const app = execa('/usr/lib/postgresql/15/bin/psql', ['-X', '-c', 'SELECT pg_sleep(60)'], {
      env: { PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: 'postgres', PGPASSWORD: pg.password, PGDATABASE: 'app' },
      reject: false,
    });
    for (let i = 0; i < 100 && (await pg.sql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND query LIKE '%pg_sleep%'`)) === '0'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await runCli(['restore', 'app.dump', '--yes', '--no-safety-backup'], env);
    expect(r.exitCode).toBe(0);
    const ended = await app;
    expect(ended.stderr).toMatch(/terminating connection/);
    expect(await pg.sql('app', 'SELECT count(*) FROM shop.orders')).toBe('2000');
  });

  it('asks on a terminal: a wrong answer cancels, the right one restores', async () => {
    // util-linux `script` gives the CLI a real terminal and forwards what we type.
    const onTerminal = (answer: string) =>
      execa('script', ['-q', '-e', '-c', `"${process.execPath}" "${join(ROOT, 'dist/cli.js')}" restore app.dump --no-safety-backup`, '/dev/null'], {
        env: { ...env, PATH: process.env.PATH ?? '' },
        extendEnv: false,
        input: `${answer}\n`,
        reject: false,
      });
    const wrong = await onTerminal('nope');
    expect(wrong.stdout).toMatch(/Type "app" to go on:/);
    expect(wrong.stdout).toMatch(/restore cancelled: the answer did not match/);
    expect(wrong.exitCode).toBe(2);
    await pg.sql('app', 'DELETE FROM shop.orders WHERE id > 5');
    const right = await onTerminal('app');
    expect(right.stdout).toMatch(/restored app\.dump\.zst into app/);
    expect(right.exitCode).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM shop.orders')).toBe('2000');
  });
});

describe('POSTGRES_COMPRESSION', () => {
  const backupTo = async (dir: string, extra: Record<string, string>) => {
    const e = { ...env, BACKUP_DIR: join(work, dir), POSTGRES_DB: 'app', MEDIA_PATHS: '', ...extra };
    const r = await runCli(['backup', '--tier', 'daily'], e);
    return { r, e };
  };
  const onlyManifest = async (dir: string) => {
    const [id] = await readdir(join(work, dir, 'daily'));
    return { runDir: join(work, dir, 'daily', id!), manifest: await readJson<Manifest>(join(work, dir, 'daily', id!, 'manifest.json')) };
  };

  it('zstd (the default) is a zstd frame around an uncompressed custom dump; the manual restore of the README works', async () => {
    const { r } = await backupTo('c-zstd', {});
    expect(r.exitCode, r.stderr).toBe(0);
    const { runDir, manifest } = await onlyManifest('c-zstd');
    expect(manifest.artifacts[0]).toMatchObject({ file: 'app.dump.zst', compression: 'zstd:3', fileCompression: 'zstd' });
    const plain = join(work, 'manual.dump');
    await execa('zstd', ['-d', '-q', '-o', plain, join(runDir, 'app.dump.zst')]);
    expect((await execa('/usr/lib/postgresql/15/bin/pg_restore', ['--list', plain])).stdout).toMatch(/TABLE DATA shop orders/);
    // Uncompressed inside: the custom format's header says so (compression 0).
    expect((await execa('/usr/lib/postgresql/15/bin/pg_restore', ['--list', plain])).stdout).toMatch(/Compression: (0|none)/);
  });

  it('gzip[:level] and none keep pg_dump\'s own file (.dump), and such runs restore and verify like before', async () => {
    for (const [setting, label] of [['gzip:1', 'gzip:1'], ['none', 'none'], ['GZIP', 'gzip']] as const) {
      const dir = `c-${setting.replace(':', '')}`;
      const { r, e } = await backupTo(dir, { POSTGRES_COMPRESSION: setting });
      expect(r.exitCode, r.stderr).toBe(0);
      const { runDir, manifest } = await onlyManifest(dir);
      expect(manifest.artifacts[0]).toMatchObject({ file: 'app.dump', compression: label, fileCompression: 'none' });
      expect((await runCli(['verify', runDir], e)).stdout).toMatch(/^ok {4}app\.dump: sha256 ok, pg_restore --list ok/m);
      const back = await runCli(['restore', join(runDir, 'app.dump'), '--yes', '--target-db', `app_${setting.replace(':', '').toLowerCase()}`], e);
      expect(back.exitCode, back.stderr).toBe(0);
    }
  });

  it('a -Z in POSTGRES_EXTRA_OPTS wins, with a warning at start; safety backups still use POSTGRES_COMPRESSION', async () => {
    const { r, e } = await backupTo('c-extra', { POSTGRES_EXTRA_OPTS: '-Z1' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/POSTGRES_EXTRA_OPTS sets pg_dump's own compression \(1\), which wins over POSTGRES_COMPRESSION/);
    const { runDir, manifest } = await onlyManifest('c-extra');
    expect(manifest.artifacts[0]).toMatchObject({ file: 'app.dump', compression: '1', fileCompression: 'none' });
    const back = await runCli(['restore', join(runDir, 'app.dump'), '--yes'], e);
    expect(back.exitCode, back.stderr).toBe(0);
    const safety = /safety backup: (\S+)/.exec(back.stdout)![1]!;
    expect(await readdir(safety)).toContain('app.dump.zst');
  });

  it('a bad setting is one line naming the choices; a missing zstd binary fails the run in one line saying what to do', async () => {
    const bad = await runCli(['backup'], { ...env, POSTGRES_COMPRESSION: 'zstd:20' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/POSTGRES_COMPRESSION.*expected zstd\[:1-19\], gzip\[:0-9\] or none/);
    // No zstd on PATH (pg_dump comes from PG_BIN_DIR; node is run by its full path).
    const { r } = await backupTo('c-nozstd', { PATH: '/nonexistent', PG_BIN_DIR: '/usr/lib/postgresql/15/bin' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^backup-sidecar: zstd is not installed: install it \(Debian: apt-get install zstd\) or set POSTGRES_COMPRESSION=gzip$/m);
    expect(await readdir(join(work, 'c-nozstd', '.partial')).catch(() => [])).toEqual([]);
  });
});

describe('POSTGRES_PARALLEL', () => {
  const dumpsStarted = async (bin: string) => (await readFile(join(bin, 'argv.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l.startsWith('pg_dump --format')).length;

  it('dumps several databases at once: both pg_dumps run together; the manifest keeps the order of POSTGRES_DB', async () => {
    // Every pg_dump waits at its start until the file "go" exists: with two at once, both are seen waiting.
    const bin = await wrapperBin(join(work, 'par-bin'), { hold: { tool: 'pg_dump', when: '--snapshot' } });
    const e = { ...env, BACKUP_DIR: join(work, 'par'), POSTGRES_DB: 'other db,app', MEDIA_PATHS: '', PG_BIN_DIR: bin, POSTGRES_PARALLEL: '2', PATH: process.env.PATH ?? '' };
    const run = execa(process.execPath, [CLI, 'backup', '--tier', 'daily'], { env: e, extendEnv: false, reject: false });
    for (let i = 0; i < 400 && (await dumpsStarted(bin)) < 2; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await dumpsStarted(bin)).toBe(2);
    await writeFile(join(bin, 'go'), '');
    const r = await run;
    expect(r.exitCode, r.stderr).toBe(0);
    const [id] = await readdir(join(work, 'par', 'daily'));
    const m = await readJson<Manifest>(join(work, 'par', 'daily', id!, 'manifest.json'));
    expect(m.artifacts.map((a) => a.source)).toEqual(['other db', 'app']);
  });

  it('one at a time with POSTGRES_PARALLEL=1; the first failure stops the others and leaves nothing', async () => {
    const bin = await wrapperBin(join(work, 'seq-bin'), { hold: { tool: 'pg_dump', when: '--snapshot' } });
    const e = { ...env, BACKUP_DIR: join(work, 'seq'), POSTGRES_DB: 'other db,app', MEDIA_PATHS: '', PG_BIN_DIR: bin, POSTGRES_PARALLEL: '1', PATH: process.env.PATH ?? '' };
    const run = execa(process.execPath, [CLI, 'backup', '--tier', 'daily'], { env: e, extendEnv: false, reject: false });
    for (let i = 0; i < 400 && (await dumpsStarted(bin)) < 1; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 500));
    expect(await dumpsStarted(bin)).toBe(1);
    await writeFile(join(bin, 'go'), '');
    expect((await run).exitCode).toBe(0);

    const dying = await wrapperBin(join(work, 'par-dying'), { dieAfterBytes: 2_000 });
    const failed = await runCli(['backup'], { ...env, BACKUP_DIR: join(work, 'par-fail'), POSTGRES_DB: 'other db,app', MEDIA_PATHS: `uploads:${join(work, 'uploads')}`, PG_BIN_DIR: dying, POSTGRES_PARALLEL: '3' });
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/^backup-sidecar: pg_dump of database (app|other db) failed: simulated crash$/m);
    expect((await filesBelow(join(work, 'par-fail'))).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('a bad value is one line', async () => {
    const r = await runCli(['backup'], { ...env, POSTGRES_PARALLEL: '0' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^backup-sidecar: POSTGRES_PARALLEL="0": expected a whole number from 1 to 64/m);
  });
});
