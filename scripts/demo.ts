/**
 * `npm run demo`: the whole story on a machine without Docker. Starts a throwaway PostgreSQL from the
 * local binaries with sample data and a sample media folder, and an S3 test server (fauxqs); backs up
 * into the volume and S3 at once, lists both, loses the volume and the data, restores from S3, and shows
 * that it is back. Everything lives in one temporary folder, removed at the end.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, ROOT, tempDir } from '../test/support/cli.ts';
import { startPostgres } from '../test/support/postgres-server.ts';
import { startS3 } from '../test/support/s3-server.ts';

const step = (text: string) => process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);

const work = await tempDir('demo');
const pg = await startPostgres();
const s3 = await startS3('demo-backups');
try {
  step(`PostgreSQL 15 on 127.0.0.1:${pg.port}, S3 test server at ${s3.endpoint}, working folder ${work}`);
  await pg.sql('postgres', 'CREATE DATABASE app;');
  await pg.sql('app', await readFile(join(ROOT, 'test/fixtures/sample.sql'), 'utf8'));
  const media = join(work, 'uploads');
  await mkdir(join(media, 'avatars'), { recursive: true });
  await writeFile(join(media, 'avatars/alice.png'), Buffer.alloc(2048, 1));
  await writeFile(join(media, 'README.txt'), 'uploaded by users\n');

  const env = {
    ...pg.env,
    ...s3.env,
    S3_PREFIX: 'demo',
    POSTGRES_DB: 'app',
    MEDIA_PATHS: `uploads:${media}`,
    BACKUP_DIR: join(work, 'backups'),
    BACKUP_LABEL: 'demo',
    LOG_FORMAT: 'pretty',
    LOG_LEVEL: 'warn',
  };
  const cli = async (...args: string[]) => {
    process.stdout.write(`$ backup-sidecar ${args.join(' ')}\n`);
    await execa(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  };
  const count = async () => pg.sql('app', 'SELECT count(*) FROM shop.orders');

  step('Back up the database and the media folder, into the volume and S3 at once');
  await cli('backup');
  await cli('list');
  await cli('list', '--remote');
  await cli('verify', 'latest');
  const runId = JSON.parse((await execa(process.execPath, [CLI, 'list', '--json'], { env })).stdout)[0].id as string;

  step('Disaster: most orders deleted, a user file gone, and the backups volume lost');
  await pg.sql('app', 'DELETE FROM shop.orders WHERE id > 10;');
  await rm(join(media, 'avatars/alice.png'));
  await rm(join(work, 'backups'), { recursive: true });
  process.stdout.write(`orders now: ${await count()}, alice.png present: false, volume: gone\n`);

  step('Restore the run from S3 (downloaded, checked against its manifest, then restored)');
  await cli('restore', runId, '--yes');
  const back = await readFile(join(media, 'avatars/alice.png')).then(() => true, () => false);
  const orders = await count();
  process.stdout.write(`orders now: ${orders}, alice.png present: ${back}\n`);
  if (orders !== '2000' || !back) throw new Error('the demo restore did not bring the data back');
  step('Done: the data is back, and the state before the restore is kept in pre-restore/');
  await cli('list');
} finally {
  await s3.stop();
  await pg.stop();
  await rm(work, { recursive: true, force: true });
}
