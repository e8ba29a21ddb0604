import { rm, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { setTimeout as sleep } from 'node:timers/promises';
import ms from 'ms';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { LOCK_FILE as LOCK, PARTIAL_DIR } from '../naming.ts';
import { ensureDir, fsProblem } from '../util/fs.ts';
import { assertNoLinks } from './links.ts';
import { JOURNAL_FILE, readJournal, writeJournal } from './restore-journal.ts';
import { recoverFolderSwap } from '../kinds/media/restore.ts';

/**
 * The lock is shared by every container that mounts the volume, so a process id proves nothing: the live
 * holder refreshes it every HEARTBEAT_MS, and one not refreshed for STALE_MS belongs to a dead process
 * (kill -9, a lost container) and is taken over, so the next run after a crash starts within seconds.
 */
export const STALE_MS = 10_000;
const HEARTBEAT_MS = 2_000;

export interface LockOptions {
  /** How long to wait for a lock another live process holds (LOCK_WAIT); then the command fails. */
  waitMs: number;
  /** Ends the wait at once (the daemon shutting down). */
  signal?: AbortSignal;
}

async function acquire(backupDir: string, log: Logger, options: LockOptions): Promise<() => Promise<void>> {
  const deadline = Date.now() + options.waitMs;
  let waiting = false;
  for (;;) {
    try {
      return await lockfile.lock(backupDir, {
        lockfilePath: join(backupDir, LOCK),
        stale: STALE_MS,
        update: HEARTBEAT_MS,
        realpath: false,
        onCompromised: (error) => log.error({ err: error.message }, 'the volume lock was lost: another process may be writing'),
      });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code !== 'ELOCKED') throw new RunError(fsProblem(error, `locking ${backupDir}`));
      if (options.signal?.aborted) throw new RunError(`stopped while waiting for the volume lock: ${describe(options.signal.reason)}`);
      if (Date.now() >= deadline) {
        throw new RunError(
          `another backup or restore is running on ${backupDir} (lock ${join(backupDir, LOCK)}); waited ${ms(options.waitMs, { long: true })} (LOCK_WAIT) for it to finish`,
        );
      }
      if (!waiting) log.info({ lock: join(backupDir, LOCK), waitMs: options.waitMs }, 'another backup or restore holds the volume lock: waiting for it (LOCK_WAIT)');
      waiting = true;
      await sleep(Math.min(500, Math.max(0, deadline - Date.now())), undefined, { signal: options.signal }).catch(() => undefined);
    }
  }
}

/**
 * Runs `work` holding the volume's lock, so that two runs (a scheduled one and a `docker exec ... backup`,
 * or two containers on one volume) never write at once. A held lock is waited for (LOCK_WAIT); a dead
 * holder's lock goes stale within STALE_MS. Holding the lock also makes it safe to remove the leftovers
 * of crashed runs in .partial/.
 */
export async function withVolumeLock<T>(backupDir: string, log: Logger, work: () => Promise<T>, options: LockOptions): Promise<T> {
  try {
    await ensureDir(backupDir);
  } catch (error) {
    throw new RunError(fsProblem(error, `creating BACKUP_DIR ${backupDir}`));
  }
  await assertNoLinks(backupDir);
  const release = await acquire(backupDir, log, options);
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
  // A folder swap of a restore that died is finished or undone first: it holds the only copy of the data.
  const journal = await readJournal(backupDir);
  if (journal !== undefined && journal.folders.length > 0) {
    for (const swap of journal.folders) {
      const did = await recoverFolderSwap(swap).catch((error: unknown) => {
        throw new RunError(fsProblem(error, `finishing the interrupted restore of ${swap.target} (journal ${join(backupDir, JOURNAL_FILE)})`));
      });
      log.warn({ folder: swap.target }, `interrupted media restore ${did}`);
    }
    // Its scratch databases are dropped by the next command that connects to the server.
    await writeJournal(backupDir, { databases: journal.databases, folders: [] });
  }
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
