import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { RunError, firstLine, stopped } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MediaArtifact } from '../manifest.ts';
import type { Cleanup } from '../run/cleanup.ts';
import { fsProblem } from '../util/fs.ts';
import { countEntries } from './media.ts';

const STAGING_PREFIX = '.backup-sidecar-restore-';

/**
 * Restores a tarball into `target` so that afterwards it holds exactly what the archive holds. The archive
 * is unpacked into a staging folder inside `target` (same file system, even when `target` is a mount
 * point) and its entry count checked; only then are the old contents removed and the new moved in.
 */
export async function restoreFolder(tarball: string, artifact: MediaArtifact, target: string, log: Logger, cleanup: Cleanup, signal?: AbortSignal): Promise<string> {
  const staging = join(target, `${STAGING_PREFIX}${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(target, { recursive: true });
    await mkdir(staging, { mode: 0o700 });
  } catch (error) {
    throw new RunError(fsProblem(error, `preparing ${target} for the restore`));
  }
  cleanup.add(`remove ${staging}`, () => rm(staging, { recursive: true, force: true }));

  log.info({ media: artifact.source, target }, 'extracting into a staging folder');
  const result = await execa(
    'tar',
    ['--extract', `--file=${tarball}`, `--directory=${staging}`, artifact.compression === 'gzip' ? '--gzip' : '--zstd', '--same-permissions', '--delay-directory-restore'],
    { reject: false, cancelSignal: signal },
  );
  stopped(signal);
  if (result.exitCode !== 0) {
    throw new RunError(`extracting ${artifact.file} failed, ${target} was not touched: ${firstLine(result.stderr).replace(/^tar: /, '')}`);
  }
  const entries = await countEntries(staging);
  if (entries !== artifact.entries) {
    throw new RunError(`${artifact.file} holds ${entries} entries, the manifest says ${artifact.entries}; ${target} was not touched`);
  }

  try {
    for (const name of await readdir(target)) {
      if (join(target, name) !== staging) await rm(join(target, name), { recursive: true, force: true });
    }
    for (const name of await readdir(staging)) await rename(join(staging, name), join(target, name));
    // The archive's root entry carries the folder's own mode.
    await chmod(target, (await stat(staging)).mode & 0o7777);
  } catch (error) {
    throw new RunError(fsProblem(error, `moving the restored files into ${target}`));
  }
  const after = await countEntries(target) - 1; // the (now empty) staging folder is still there
  if (after !== artifact.entries) throw new RunError(`${target} holds ${after} entries after the restore, the manifest says ${artifact.entries}`);
  return `${entries} entries, as in the manifest`;
}
