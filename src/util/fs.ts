import { access, lchown, open, mkdir, readdir, readFile, rename, rm, writeFile, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RunError, describe } from '../errors.ts';

/** Folders in the volume are private: the backups hold the whole database. */
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function ensureDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: DIR_MODE });
}

/** Makes a rename or a new file in `dir` durable: without it a power cut can lose the entry. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a small file so that readers see the old content or the new, never a part. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp`;
  // Never through a link someone left at the temporary name: remove it, then create the file anew.
  await rm(tmp, { force: true });
  try {
    await writeFile(tmp, data, { mode: FILE_MODE, flush: true, flag: 'wx' });
    await rename(tmp, path);
  } catch (error) {
    // A full disk leaves no half-written temporary file behind.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dirname(path));
}

/** A one-line explanation of a file system error, with a hint for the usual causes. */
export function fsProblem(error: unknown, what: string): string {
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOSPC':
      return `disk full while ${what}: free space in the volume (or prune old runs) and try again`;
    case 'EDQUOT':
      return `disk quota exceeded while ${what}: raise the quota or free space`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied while ${what}: check the ownership and mode of ${e.path ?? 'the folder'}`;
    case 'EROFS':
      return `read-only file system while ${what}: mount ${e.path ?? 'it'} read-write`;
    case 'ENOENT':
      return `${e.path ?? 'a file'} does not exist (while ${what})`;
    default:
      return `${what} failed: ${e.message}`;
  }
}

/** A small JSON file of ours, checked by `schema`; undefined when it is missing or damaged. */
export async function readJsonFile<T>(path: string, schema: { parse(data: unknown): T }): Promise<T | undefined> {
  try {
    return schema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch {
    return undefined;
  }
}

/** Free bytes for an unprivileged writer in the file system of `dir`; undefined when it cannot be read. */
export async function freeSpace(dir: string): Promise<number | undefined> {
  const fs = await statfs(dir).catch(() => undefined);
  return fs === undefined ? undefined : fs.bavail * fs.bsize;
}

/** Gives `dir` and everything below it to uid:gid; links are changed, never followed. Fails in one line naming the entry. */
export async function lchownTree(dir: string, uid: number, gid: number): Promise<void> {
  for (const entry of [dir, ...(await readdir(dir, { recursive: true })).map((e) => join(dir, e))]) {
    await lchown(entry, uid, gid).catch((error: unknown) => Promise.reject(new RunError(`cannot give ${entry} to ${uid}:${gid}: ${describe(error)}`)));
  }
}
