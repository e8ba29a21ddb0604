import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load.ts';
import { ENV } from '../src/config/schema.ts';
import { ROOT } from './support/cli.ts';

// The examples users copy: every variable they set must exist and parse, every mount and secret must
// line up. (No Docker engine or cluster runs here; the image itself is tested by `npm run test:image`.)
const ENTRYPOINT_VARS = ['PUID', 'PGID'];
const known = (name: string) => name in ENV || (name.endsWith('_FILE') && name.slice(0, -5) in ENV) || ENTRYPOINT_VARS.includes(name);

interface ComposeService {
  build?: string;
  image?: string;
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file: string }>;
}

/** `${VAR:-default}` as compose resolves it with VAR unset. */
const interpolate = (value: string) => String(value).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

describe('docker-compose.example.yml', async () => {
  const compose = parse(await readFile(join(ROOT, 'docker-compose.example.yml'), 'utf8')) as Compose;
  const backup = compose.services.backup!;

  it('has the whole stack: PostgreSQL, an app with a media volume, MinIO with its bucket, and the sidecar built from here', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'backup', 'db', 'minio', 'minio-init']);
    expect(backup.build).toBe('.');
    expect(compose.services.app!.volumes).toContain('media:/srv/media');
    expect(compose.services['minio-init']!.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
    expect(backup.depends_on).toMatchObject({ db: { condition: 'service_healthy' }, 'minio-init': { condition: 'service_completed_successfully' } });
  });

  it('mounts the backups volume, the media volume read-only, and every secret it names exists', async () => {
    expect(backup.volumes).toContain('backups:/backups');
    const media = backup.volumes!.find((v) => v.startsWith('media:'))!;
    expect(media).toMatch(/:ro$/);
    const mediaTarget = media.split(':')[1]!;
    for (const entry of interpolate(backup.environment!.MEDIA_PATHS!).split(',')) expect(entry.split(':')[1]!.startsWith(`${mediaTarget}/`)).toBe(true);
    for (const name of Object.values(compose.services).flatMap((s) => s.secrets ?? [])) {
      expect(compose.secrets[name], name).toBeDefined();
      await access(join(ROOT, compose.secrets[name]!.file));
    }
    for (const name of Object.values(compose.services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(':')[0]!))) {
      // A bind mount (./…) is a file of this repository; anything else a named volume.
      if (name.startsWith('./')) await access(join(ROOT, name));
      else expect(compose.volumes).toHaveProperty(name);
    }
  });

  it("the backup service's environment is valid: secrets through _FILE, S3 on MinIO, a schedule", async () => {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(backup.environment!)) {
      expect(known(name), `${name} is not a setting`).toBe(true);
      // Each /run/secrets/<name> is the compose secret of that name.
      const secret = /^\/run\/secrets\/(.+)$/.exec(String(value));
      env[name] = secret === null ? interpolate(String(value)) : join(ROOT, compose.secrets[secret[1]!]!.file);
    }
    expect(Object.keys(env).filter((k) => /PASSWORD$|SECRET_ACCESS_KEY$|ACCESS_KEY_ID$/.test(k))).toEqual([]);
    const { config, problems } = loadConfig(env);
    expect(problems).toEqual([]);
    expect(config!.s3).toMatchObject({ bucket: 'backups', endpoint: 'http://minio:9000', forcePathStyle: true });
    expect(config!.daemon.schedule).toBe('0 3 * * *');
    // Docker's stop timeout must leave the daemon its SHUTDOWN_TIMEOUT.
    expect(Number.parseInt(backup.stop_grace_period!, 10)).toBeGreaterThan(config!.daemon.shutdownTimeoutMs / 1000);
  });
});

interface K8sContainer {
  name: string;
  command?: string[];
  env?: { name: string; value: string }[];
}

/** Every container of every Pod template in the documents. */
function containersIn(node: unknown): K8sContainer[] {
  if (Array.isArray(node)) return node.flatMap(containersIn);
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, value]) => (key === 'containers' ? (value as K8sContainer[]) : containersIn(value)));
}

describe('examples/postgres/allow-replication.sh', () => {
  it('adds the replication line the official image lacks, for POSTGRES_USER, to PGDATA/pg_hba.conf', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bsc-hba-'));
    try {
      await writeFile(join(dir, 'pg_hba.conf'), 'host all all all scram-sha-256\n');
      await execa('sh', [join(ROOT, 'examples/postgres/allow-replication.sh')], { env: { PGDATA: dir, POSTGRES_USER: 'app' } });
      expect(await readFile(join(dir, 'pg_hba.conf'), 'utf8')).toBe('host all all all scram-sha-256\nhost replication app all scram-sha-256\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('examples/kubernetes', () => {
  it.each(['sidecar.yaml', 'cronjob.yaml'])('%s sets only real settings, valid, with secrets as files', async (file) => {
    const docs = parseAllDocuments(await readFile(join(ROOT, 'examples/kubernetes', file), 'utf8')).map((d) => d.toJS() as unknown);
    const backup = containersIn(docs).filter((c) => c.name === 'backup');
    expect(backup).toHaveLength(1);
    const env: Record<string, string> = {};
    for (const { name, value } of backup[0]!.env ?? []) {
      expect(known(name), `${name} is not a setting`).toBe(true);
      // The mounted Secret files do not exist here: stand in with a value.
      if (name.endsWith('_FILE')) env[name.slice(0, -5)] = 'stand-in';
      else env[name] = value;
    }
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['POSTGRES_PASSWORD', 'AWS_SECRET_ACCESS_KEY']));
    expect(loadConfig(env).problems).toEqual([]);
    if (file === 'cronjob.yaml') expect(backup[0]!.command).toEqual(['backup-sidecar', 'backup']);
  });
});
