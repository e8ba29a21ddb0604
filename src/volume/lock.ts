import { rm, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { RunError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { LOCK_FILE as LOCK, PARTIAL_DIR } from '../naming.ts';
import { ensureDir, fsProblem } from '../util/fs.ts';
import { assertNoLinks } from './links.ts';

/**
 * Runs `work` holding the volume's lock, so that two runs (a scheduled one and a `docker exec ... backup`,
 * or two containers on one volume) never write at once. A lock whose holder died goes stale after 30 s.
 * Holding the lock also makes it safe to remove the leftovers of crashed runs in .partial/.
 */
export async function withVolumeLock<T>(backupDir: string, log: Logger, work: () => Promise<T>): Promise<T> {
  try {
    await ensureDir(backupDir);
  } catch (error) {
    throw new RunError(fsProblem(error, `creating BACKUP_DIR ${backupDir}`));
  }
  await assertNoLinks(backupDir);
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(backupDir, {
      lockfilePath: join(backupDir, LOCK),
      stale: 30_000,
      update: 10_000,
      realpath: false,
      onCompromised: (error) => log.error({ err: error.message }, 'the volume lock was lost: another process may be writing'),
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ELOCKED') {
      throw new RunError(`another backup or restore is running on ${backupDir} (lock ${join(backupDir, LOCK)}); wait for it to finish`);
    }
    throw new RunError(fsProblem(error, `locking ${backupDir}`));
  }
  try {
    await removeLeftovers(backupDir, log);
    return await work();
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * Drills unpack media into TMPDIR in folders named after the volume (another volume's drill may be
 * running beside this one); one left by a killed drill holds plaintext.
 */
export function drillDirPrefix(backupDir: string): string {
  return `backup-sidecar-drill-${createHash('sha256').update(backupDir).digest('hex').slice(0, 12)}-`;
}

/**
 * Removes what killed processes left: partial runs, downloads and decrypted copies in .partial/, and
 * drill folders in TMPDIR (only drills, which hold this lock, make them).
 */
async function removeLeftovers(backupDir: string, log: Logger): Promise<void> {
  const partial = join(backupDir, PARTIAL_DIR);
  const leftovers = [
    ...(await readdir(partial).catch(() => [] as string[])).map((name) => join(partial, name)),
    ...(await readdir(tmpdir()).catch(() => [] as string[])).filter((name) => name.startsWith(drillDirPrefix(backupDir))).map((name) => join(tmpdir(), name)),
  ];
  for (const path of leftovers) {
    log.warn({ path }, 'removing the leftovers of an interrupted run');
    await rm(path, { recursive: true, force: true });
  }
}
