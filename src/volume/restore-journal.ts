import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../util/fs.ts';

/**
 * What a restore in progress has under way outside the volume: scratch databases it made, and media
 * folders it is swapping. Written before each step, so a restore killed at any instant leaves a record;
 * the volume lock guarantees that a journal found by the next locked command belongs to a dead restore.
 */
export const JOURNAL_FILE = '.restore-journal.json';

const folderSwap = z.object({
  target: z.string(),
  staging: z.string(),
  aside: z.string(),
  /**
   * extract: the archive is being unpacked into staging; aside: old entries are being moved aside (both
   * rolled back); in: new entries are being moved in (completed); done: only leftovers to remove.
   */
  phase: z.enum(['extract', 'aside', 'in', 'done']),
});
export type FolderSwap = z.infer<typeof folderSwap>;

const journalSchema = z.object({ databases: z.array(z.string()), folders: z.array(folderSwap) });
export type Journal = z.infer<typeof journalSchema>;

export async function readJournal(backupDir: string): Promise<Journal | undefined> {
  return readJsonFile(join(backupDir, JOURNAL_FILE), journalSchema);
}

/** The journal of the restore running now, kept on disk as it changes. */
export class RestoreJournal {
  private readonly path: string;
  private readonly state: Journal = { databases: [], folders: [] };

  constructor(backupDir: string) {
    this.path = join(backupDir, JOURNAL_FILE);
  }

  async addDatabase(name: string): Promise<void> {
    this.state.databases.push(name);
    await this.save();
  }

  /** Records a folder swap's phase (adding the swap when it is new). */
  async folder(swap: FolderSwap): Promise<void> {
    const i = this.state.folders.findIndex((f) => f.target === swap.target);
    if (i >= 0) this.state.folders[i] = swap;
    else this.state.folders.push(swap);
    await this.save();
  }

  private async save(): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify(this.state));
  }

  /**
   * The restore ended, whatever happened, and its own cleanup ran. A folder swap it could not finish nor
   * undo stays in the journal, for the next locked command.
   */
  async close(): Promise<void> {
    await writeJournal(dirname(this.path), { databases: [], folders: this.state.folders.filter((f) => f.phase !== 'done') });
  }
}

/** Rewrites what is left to do of a dead restore's journal (or removes it when nothing is). */
export async function writeJournal(backupDir: string, journal: Journal): Promise<void> {
  if (journal.databases.length === 0 && journal.folders.length === 0) await rm(join(backupDir, JOURNAL_FILE), { force: true });
  else await writeFileAtomic(join(backupDir, JOURNAL_FILE), JSON.stringify(journal));
}
