import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../src/manifest.ts';
import type { TestS3 } from './s3-server.ts';

/** A run as an attacker edits it: the manifest and the bytes of each file, by name. */
export interface ForgedRun {
  manifest: Manifest;
  files: Map<string, Buffer>;
}

export interface RunAt {
  tier: string;
  id: string;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * What someone who can write to the bucket or the volume, but holds no key, can do: take a genuine run,
 * change one thing, recompute every checksum (sha256 and size in the manifest, and the sha256 stored with
 * each object), and store it under a new run id. The signature, if any, is copied as it was (it no longer
 * matches) unless `signature: 'drop'`.
 */
async function forge(run: ForgedRun, to: RunAt, change: (run: ForgedRun) => void | Promise<void>): Promise<void> {
  await change(run);
  run.manifest.runId = to.id;
  run.manifest.tier = to.tier;
  for (const a of run.manifest.artifacts) {
    const body = run.files.get(a.file);
    if (body === undefined) continue;
    if (a.encryption === null) {
      a.sha256 = sha256(body);
      a.size = body.length;
    }
  }
}

export async function forgeInBucket(
  s3: TestS3,
  prefix: string,
  from: RunAt,
  to: RunAt,
  change: (run: ForgedRun) => void | Promise<void>,
  options: { signature?: 'copy' | 'drop' } = {},
): Promise<void> {
  const head = (at: RunAt) => `${prefix === '' ? '' : `${prefix}/`}${at.tier}/${at.id}/`;
  const get = async (key: string) => {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  };
  const put = async (key: string, body: Buffer) => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, Metadata: { sha256: sha256(body) } }));
  };
  const manifest = JSON.parse((await get(`${head(from)}manifest.json`)).toString('utf8')) as Manifest;
  const files = new Map<string, Buffer>();
  for (const a of manifest.artifacts) files.set(a.file, await get(`${head(from)}${a.file}`));
  const run = { manifest, files };
  await forge(run, to, change);
  for (const [file, body] of files) if (!file.includes('/')) await put(`${head(to)}${file}`, body);
  const keys = await s3.keys();
  if ((options.signature ?? 'copy') === 'copy' && keys.includes(`${head(from)}manifest.json.sig`)) {
    await put(`${head(to)}manifest.json.sig`, await get(`${head(from)}manifest.json.sig`));
  }
  await put(`${head(to)}manifest.json`, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
}

export async function forgeInVolume(backupDir: string, from: RunAt, to: RunAt, change: (run: ForgedRun) => void | Promise<void>): Promise<string> {
  const src = join(backupDir, from.tier, from.id);
  const manifest = JSON.parse(await readFile(join(src, 'manifest.json'), 'utf8')) as Manifest;
  const files = new Map<string, Buffer>();
  for (const a of manifest.artifacts) files.set(a.file, await readFile(join(src, a.file)));
  const run = { manifest, files };
  await forge(run, to, change);
  const dir = join(backupDir, to.tier, to.id);
  await mkdir(dir, { recursive: true });
  for (const [file, body] of files) await writeFile(join(dir, file), body);
  if ((await readdir(src)).includes('manifest.json.sig')) await writeFile(join(dir, 'manifest.json.sig'), await readFile(join(src, 'manifest.json.sig')));
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}
