import { lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A command that runs as root (restore --pitr, to give a data folder to the postgres image's user) in a
 * volume another user owns: what it created under `paths` goes back to the volume's owner, so that the
 * daemon, running as that user, can go on writing and removing there. Links are changed, never followed.
 */
export async function giveBackToVolumeOwner(backupDir: string, paths: readonly string[]): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const owner = await lstat(backupDir);
  if (owner.uid === 0) return;
  for (const path of paths) {
    const below = await readdir(path, { recursive: true }).catch((): string[] => []);
    for (const entry of [path, ...below.map((e) => join(path, e))]) {
      const info = await lstat(entry).catch(() => undefined);
      if (info !== undefined && (info.uid !== owner.uid || info.gid !== owner.gid)) await lchown(entry, owner.uid, owner.gid);
    }
  }
}
