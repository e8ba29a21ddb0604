import { lstat } from 'node:fs/promises';
import { lchownTree, pathExists } from '../util/fs.ts';

/**
 * A command that runs as root (restore --pitr, to give a data folder to the postgres image's user) in a
 * volume another user owns: what it created under `paths` goes back to the volume's owner, so that the
 * daemon, running as that user, can go on writing and removing there. Links are changed, never followed.
 */
export async function giveBackToVolumeOwner(backupDir: string, paths: readonly string[]): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const owner = await lstat(backupDir);
  if (owner.uid === 0) return;
  for (const path of paths) if (await pathExists(path)) await lchownTree(path, owner.uid, owner.gid);
}
