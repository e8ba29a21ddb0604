import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RunError } from '../errors.ts';
import { LOCK_FILE, PARTIAL_DIR, RUN_TIERS, parseRunId } from '../naming.ts';

async function refuseLink(path: string, backupDir: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info?.isSymbolicLink() !== true) return;
  const target = await readlink(path).catch(() => '?');
  throw new RunError(
    `${path} is a symbolic link (to ${target}): backup-sidecar never follows a link in ${backupDir} it did not make, so it does nothing; replace the link with a real folder or remove it`,
  );
}

async function refuseLinksIn(dir: string, backupDir: string, only: (name: string) => boolean = () => true): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const folders: string[] = [];
  for (const entry of entries.filter((e) => only(e.name))) {
    if (entry.isSymbolicLink()) await refuseLink(join(dir, entry.name), backupDir);
    else if (entry.isDirectory()) folders.push(join(dir, entry.name));
  }
  return folders;
}

/**
 * Refuses to work on a volume where someone planted a link: .partial, the lock, a tier folder, a run
 * folder or a file in a run. Cleanup and prune delete and rename there, and would otherwise act on the
 * link's target, outside BACKUP_DIR. BACKUP_DIR itself is the operator's to choose.
 */
export async function assertNoLinks(backupDir: string): Promise<void> {
  for (const name of [PARTIAL_DIR, LOCK_FILE, ...RUN_TIERS]) await refuseLink(join(backupDir, name), backupDir);
  await refuseLinksIn(join(backupDir, PARTIAL_DIR), backupDir);
  for (const tier of RUN_TIERS) {
    for (const run of await refuseLinksIn(join(backupDir, tier), backupDir, (name) => parseRunId(name) !== undefined)) {
      await refuseLinksIn(run, backupDir);
    }
  }
}
