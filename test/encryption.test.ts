import { createHash } from 'node:crypto';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesBelow, readJson, runCli, tempDir } from './support/cli.ts';
import { PG15_BIN, startPostgres, type TestServer } from './support/postgres-server.ts';
import { startS3, type TestS3 } from './support/s3-server.ts';

// Encryption at rest with age: the volume and the bucket hold nothing readable; the standard `age` tool
// (Debian's package) decrypts the files without this image; restore decrypts with the identity.
const MARKER = 'plaintext-marker-Qx81';
let pg: TestServer;
let s3: TestS3;
let work: string;
let env: Record<string, string>;
let identity: string;
let otherIdentity: string;

interface Manifest {
  runId: string;
  artifacts: { file: string; sha256: string; size: number; encryption: { format: string; plainSha256: string; plainSize: number } | null }[];
}

async function keypair(name: string): Promise<{ file: string; recipient: string }> {
  const file = join(work, `${name}.key`);
  const made = await execa('age-keygen', ['-o', file], { reject: false });
  if (made.exitCode !== 0) throw new Error(`age-keygen failed (apt-get install -y age): ${made.stderr}`);
  const { stdout } = await execa('age-keygen', ['-y', file]);
  return { file, recipient: stdout.trim() };
}

async function onlyRun(backupDir: string): Promise<{ dir: string; manifest: Manifest }> {
  for (const tier of ['daily', 'weekly', 'monthly', 'yearly']) {
    const ids = await readdir(join(backupDir, tier)).catch(() => []);
    if (ids.length > 0) {
      const dir = join(backupDir, tier, ids.sort().at(-1)!);
      return { dir, manifest: await readJson<Manifest>(join(dir, 'manifest.json')) };
    }
  }
  throw new Error(`no run in ${backupDir}`);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3()]);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', `CREATE TABLE notes (body text); INSERT INTO notes SELECT '${MARKER} ' || g FROM generate_series(1, 2000) g;`);
  work = await tempDir('age');
  await execa('mkdir', ['-p', join(work, 'media/docs')]);
  await writeFile(join(work, 'media/docs/contract.txt'), `${MARKER} in a file\n`);
  const mine = await keypair('mine');
  const other = await keypair('other');
  identity = mine.file;
  otherIdentity = other.file;
  env = { ...pg.env, ...s3.env, POSTGRES_DB: 'app', MEDIA_PATHS: `uploads:${join(work, 'media')}`, BACKUP_DIR: join(work, 'backups'), ENCRYPTION_RECIPIENTS: mine.recipient };
});

afterAll(async () => {
  await Promise.all([pg?.stop(), s3?.stop()]);
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('encryption at rest (age)', () => {
  it('encrypts every artifact as it is streamed: .age files, nothing readable in the volume or the bucket', async () => {
    const r = await runCli(['backup'], env);
    expect(r.exitCode, r.stderr).toBe(0);
    const { dir, manifest } = await onlyRun(env.BACKUP_DIR!);
    expect(manifest.artifacts.map((a) => a.file).sort()).toEqual(['app.dump.zst.age', 'uploads.tar.gz.age']);
    for (const a of manifest.artifacts) {
      const stored = await readFile(join(dir, a.file));
      expect(stored.subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
      expect(sha256(stored)).toBe(a.sha256);
      expect(a.encryption).toMatchObject({ format: 'age', plainSize: expect.any(Number) });
      expect(a.encryption!.plainSha256).not.toBe(a.sha256);
    }
    for (const file of await filesBelow(env.BACKUP_DIR!)) expect((await readFile(join(env.BACKUP_DIR!, file))).includes(MARKER), file).toBe(false);
    for (const key of await s3.keys()) {
      const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      expect(Buffer.from(await object.Body!.transformToByteArray()).includes(MARKER), key).toBe(false);
    }
    expect(r.stderr).not.toMatch(/AGE-SECRET-KEY/);
  });

  it('the standard age tool decrypts the files without this image', async () => {
    const { dir, manifest } = await onlyRun(env.BACKUP_DIR!);
    for (const a of manifest.artifacts) {
      const plain = (await execa('age', ['--decrypt', '--identity', identity, join(dir, a.file)], { encoding: 'buffer' })).stdout as Uint8Array;
      expect(sha256(Buffer.from(plain))).toBe(a.encryption!.plainSha256);
      expect(plain.byteLength).toBe(a.encryption!.plainSize);
    }
    // As the README says: age -d, then zstd -d, then pg_restore.
    const dump = join(work, 'app.dump');
    await execa('age', ['--decrypt', '--identity', identity, '--output', `${dump}.zst`, join(dir, 'app.dump.zst.age')]);
    await execa('zstd', ['-d', '-q', `${dump}.zst`]);
    expect((await execa(join(PG15_BIN, 'pg_restore'), ['--list', dump])).stdout).toMatch(/TABLE DATA public notes/);
    const tar = await execa('sh', ['-c', `age -d -i '${identity}' '${join(dir, 'uploads.tar.gz.age')}' | tar -tzf -`]);
    expect(tar.stdout).toContain('./docs/contract.txt');
  });

  it('without a key or with the wrong one: a one-line error before anything is touched', async () => {
    const oid = await pg.sql('postgres', "SELECT oid FROM pg_database WHERE datname = 'app';");
    const missing = await runCli(['restore', 'latest', '--yes'], env);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/^backup-sidecar: run \S+ is encrypted: set ENCRYPTION_IDENTITY_FILE \(an age identity\) or ENCRYPTION_PASSPHRASE to decrypt it$/m);
    const wrong = await runCli(['restore', 'latest', '--yes'], { ...env, ENCRYPTION_IDENTITY_FILE: otherIdentity });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/cannot decrypt \S+app\.dump\.zst\.age: wrong key: set ENCRYPTION_IDENTITY_FILE or ENCRYPTION_PASSPHRASE/);
    expect(await pg.sql('postgres', "SELECT oid FROM pg_database WHERE datname = 'app';")).toBe(oid);
    expect(await readdir(join(env.BACKUP_DIR!, '.partial'))).toEqual([]);
    expect(await readdir(join(env.BACKUP_DIR!, 'pre-restore')).catch(() => [])).toEqual([]);
    const verify = await runCli(['verify'], env);
    expect(verify.exitCode).toBe(0);
    expect(verify.stdout).toMatch(/sha256 ok \(encrypted; set ENCRYPTION_IDENTITY_FILE/);
  });

  it('verify, the drill and restore decrypt with ENCRYPTION_IDENTITY_FILE', async () => {
    const keyed = { ...env, ENCRYPTION_IDENTITY_FILE: identity };
    const verify = await runCli(['verify'], keyed);
    expect(verify.exitCode, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/^ok {4}app\.dump\.zst\.age: sha256 ok, decrypted: sha256 ok, zstd -t ok, pg_restore --list ok/m);
    const drill = await runCli(['verify', '--restore'], keyed);
    expect(drill.exitCode, drill.stdout).toBe(0);
    expect(drill.stdout).toMatch(/^ok {4}decrypt: /m);
    await pg.sql('app', 'DELETE FROM notes;');
    const restore = await runCli(['restore', 'app.dump', '--yes'], keyed);
    expect(restore.exitCode, restore.stderr).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('2000');
    const safety = await filesBelow(join(env.BACKUP_DIR!, 'pre-restore'));
    expect(safety.filter((f) => !f.endsWith('manifest.json')).every((f) => f.endsWith('.age'))).toBe(true);
    expect(await readdir(join(env.BACKUP_DIR!, '.partial'))).toEqual([]);
  });

  it('an encrypted run that exists only in S3 is downloaded, decrypted and restored', async () => {
    const { dir, manifest } = await onlyRun(env.BACKUP_DIR!);
    await rm(dir, { recursive: true });
    await pg.sql('app', 'DELETE FROM notes;');
    const r = await runCli(['restore', manifest.runId, '--yes'], { ...env, ENCRYPTION_IDENTITY_FILE: identity });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await pg.sql('app', 'SELECT count(*) FROM notes;')).toBe('2000');
  });

  it('a passphrase works too (age scrypt), and bad settings are one clear line each', async () => {
    const dir = join(work, 'passphrase');
    const base = { ...pg.env, POSTGRES_DB: 'app', BACKUP_DIR: dir };
    const backup = await runCli(['backup'], { ...base, ENCRYPTION_PASSPHRASE: 'correct horse battery staple', LOG_LEVEL: 'trace' });
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(backup.stderr).not.toContain('correct horse');
    const { dir: runDir } = await onlyRun(dir);
    expect(await readFile(join(runDir, 'manifest.json'), 'utf8')).not.toContain('correct horse');
    expect((await readFile(join(runDir, 'app.dump.zst.age'))).toString('latin1')).toMatch(/-> scrypt /);
    expect((await runCli(['verify'], { ...base, ENCRYPTION_PASSPHRASE: 'correct horse battery staple' })).exitCode).toBe(0);
    // The passphrase also derives the signing key: a wrong one is caught at the signature, in one line.
    const wrong = await runCli(['verify'], { ...base, ENCRYPTION_PASSPHRASE: 'wrong' });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/^backup-sidecar: run \S+ has a signature that does not match its manifest under the key derived from ENCRYPTION_PASSPHRASE: the passphrase differs from the one the run was made with/m);
    // Past the signature (an unsigned run, explicitly trusted), age itself refuses the wrong passphrase.
    await rm(join(runDir, 'manifest.json.sig'));
    const undecryptable = await runCli(['verify', '--trust-unsigned'], { ...base, ENCRYPTION_PASSPHRASE: 'wrong' });
    expect(undecryptable.exitCode).toBe(1);
    expect(undecryptable.stdout).toMatch(/cannot decrypt/);
    const both = await runCli(['backup'], { ...base, ENCRYPTION_PASSPHRASE: 'x', ENCRYPTION_RECIPIENTS: 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p' });
    expect(both.stderr.trim()).toBe('backup-sidecar: ENCRYPTION_RECIPIENTS, ENCRYPTION_PASSPHRASE: set one of them (age cannot mix public keys and a passphrase in one file)');
    const bad = await runCli(['backup'], { ...base, ENCRYPTION_RECIPIENTS: 'ssh-ed25519 AAAA' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^backup-sidecar: ENCRYPTION_RECIPIENTS.*expected age public keys \(age1…\)/m);
  });
});
