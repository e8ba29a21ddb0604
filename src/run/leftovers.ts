import type { Logger } from '../log.ts';
import { dropAbandoned } from '../kinds/postgres/restore.ts';
import type { PgServer } from '../pg/server.ts';
import { STALE_MS } from '../volume/lock.ts';
import { readJournal, writeJournal } from '../volume/restore-journal.ts';

/**
 * Drops the scratch databases that interrupted restores left on the server (see dropAbandoned), and
 * forgets those of a dead restore's journal that are gone. The caller holds the volume lock, so the
 * journal it finds belongs to a restore that died.
 */
export async function dropRestoreLeftovers(backupDir: string, server: PgServer, admin: string, log: Logger): Promise<void> {
  const journal = await readJournal(backupDir);
  let left;
  try {
    left = await dropAbandoned(server, admin, journal?.databases ?? [], STALE_MS, log);
  } catch (error) {
    // Cleaning up after others is no reason to fail this command: the next one tries again.
    log.warn({ err: (error as Error).message }, 'cannot look for the leftovers of interrupted restores');
    return;
  }
  if (journal !== undefined) await writeJournal(backupDir, { databases: journal.databases.filter((d) => left.some((l) => l.name === d)), folders: journal.folders });
  if (left.length > 0) log.warn({ databases: left.map((l) => l.name) }, 'scratch databases of restores still in use or too young to judge: left alone (status lists them)');
}
