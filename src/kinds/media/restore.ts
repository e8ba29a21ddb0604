import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { RunError, firstLine, stopped } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { MediaArtifact } from '../../manifest.ts';
import type { Cleanup } from '../../util/cleanup.ts';
import type { FolderSwap, RestoreJournal } from '../../volume/restore-journal.ts';
import { fsProblem } from '../../util/fs.ts';
import { bytesReadBy, type Follow } from '../../util/progress.ts';
import { ASIDE_PREFIX, STAGING_PREFIX } from '../../naming.ts';
import { COMPRESS_FLAG, countEntries } from './tarball.ts';


/** Moves every entry of `from` into `to`, except the names in `skip`. */
async function moveEntries(from: string, to: string, skip: string[] = []): Promise<void> {
  for (const name of await readdir(from)) {
    if (!skip.includes(join(from, name))) await rename(join(from, name), join(to, name));
  }
}

/**
 * Restores a tarball into `target` so that afterwards it holds exactly what the archive holds. The archive
 * is unpacked into a staging folder inside `target` (same file system, even when `target` is a mount
 * point) and its entry count checked. Then the swap, recorded step by step in the restore journal: the old
 * entries move into an aside folder, the new ones move in, and only then is the aside folder deleted. A
 * restore killed at any instant is rolled back (old entries still being moved aside) or completed (new
 * ones being moved in) by the next command that takes the volume lock.
 */
export async function restoreFolder(tarball: string, artifact: MediaArtifact, target: string, log: Logger, cleanup: Cleanup, journal: RestoreJournal, signal?: AbortSignal, follow?: Follow): Promise<string> {
  const id = randomBytes(4).toString('hex');
  const staging = join(target, `${STAGING_PREFIX}${id}`);
  const aside = join(target, `${ASIDE_PREFIX}${id}`);
  let swap: FolderSwap = { target, staging, aside, phase: 'extract' };
  try {
    await journal.folder(swap);
    await mkdir(target, { recursive: true });
    await mkdir(staging, { mode: 0o700 });
  } catch (error) {
    throw new RunError(fsProblem(error, `preparing ${target} for the restore`));
  }
  const removeStaging = cleanup.add(`remove ${staging}`, async () => {
    await rm(staging, { recursive: true, force: true });
    await journal.folder({ ...swap, phase: 'done' });
  });

  log.info({ media: artifact.source, target }, 'extracting into a staging folder');
  const extracting = execa(
    'tar',
    ['--extract', `--file=${tarball}`, `--directory=${staging}`, COMPRESS_FLAG[artifact.compression], '--same-permissions', '--delay-directory-restore'],
    { reject: false, cancelSignal: signal },
  );
  const stopProgress = follow?.(`unpack ${artifact.file}`, bytesReadBy(extracting.pid), artifact.size) ?? (() => undefined);
  const result = await extracting.finally(stopProgress);
  stopped(signal);
  if (result.exitCode !== 0) {
    throw new RunError(`extracting ${artifact.file} failed, ${target} was not touched: ${firstLine(result.stderr).replace(/^tar: /, '')}`);
  }
  const entries = await countEntries(staging);
  if (entries !== artifact.entries) {
    throw new RunError(`${artifact.file} holds ${entries} entries, the manifest says ${artifact.entries}; ${target} was not touched`);
  }

  try {
    swap = { ...swap, phase: 'aside' };
    await journal.folder(swap);
    removeStaging();
    await mkdir(aside, { mode: 0o700 });
    await moveEntries(target, aside, [staging, aside]);
    swap = { ...swap, phase: 'in' };
    await journal.folder(swap);
    await moveEntries(staging, target);
    // The archive's root entry carries the folder's own mode.
    await chmod(target, (await stat(staging)).mode & 0o7777);
    await journal.folder({ target, staging, aside, phase: 'done' });
    await rm(aside, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  } catch (error) {
    const why = fsProblem(error, `moving the restored files into ${target}`);
    // Finished or undone now if possible; otherwise the journal keeps it for the next locked command.
    const did = await recoverFolderSwap(swap).then(
      async (line) => {
        await journal.folder({ ...swap, phase: 'done' });
        return line;
      },
      () => 'the next backup-sidecar command finishes or rolls back the swap',
    );
    throw new RunError(`${why}; ${did}`);
  }
  const after = await countEntries(target);
  if (after !== artifact.entries) throw new RunError(`${target} holds ${after} entries after the restore, the manifest says ${artifact.entries}`);
  return `${entries} entries, as in the manifest`;
}

/**
 * Finishes the folder swap of a restore that died: rolled back while the old entries were being moved
 * aside, completed once the new ones were being moved in. Returns what it did, one line.
 */
export async function recoverFolderSwap(swap: FolderSwap): Promise<string> {
  const exists = (path: string) => stat(path).then(() => true, () => false);
  let did: string;
  if (swap.phase === 'extract' || swap.phase === 'aside') {
    if (await exists(swap.aside)) await moveEntries(swap.aside, swap.target);
    did = `rolled back: ${swap.target} holds its old contents again`;
  } else {
    if (swap.phase === 'in' && (await exists(swap.staging))) await moveEntries(swap.staging, swap.target);
    did = `completed: ${swap.target} holds the restored contents`;
  }
  await rm(swap.aside, { recursive: true, force: true });
  await rm(swap.staging, { recursive: true, force: true });
  return did;
}
