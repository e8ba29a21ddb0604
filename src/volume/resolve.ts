import { stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { UsageError } from '../errors.ts';
import { readManifest, seriesOf, type Artifact, type Manifest } from '../manifest.ts';
import { PRE_RESTORE, parseRunId } from '../naming.ts';
import { isFutureDated } from '../retention/policy.ts';
import { listRuns, type RunTrust } from './runs.ts';

/** What a reference names: a run and some of its artifacts. */
export interface Selection {
  runDir: string;
  manifest: Manifest;
  artifacts: Artifact[];
}

async function fromPath(path: string): Promise<Selection | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) return undefined;
  const runDir = info.isDirectory() ? path : dirname(path);
  const manifest = await readManifest(runDir);
  if (info.isDirectory()) return { runDir, manifest, artifacts: manifest.artifacts };
  const artifact = manifest.artifacts.find((a) => a.file === basename(path));
  if (artifact === undefined) throw new UsageError(`${path} is not listed in the manifest of its run; it is not a backup artifact`);
  return { runDir, manifest, artifacts: [artifact] };
}

/** Says so when BACKUP_DIR is not there at all: a volume not mounted looks like one without runs otherwise. */
export async function missingVolume(backupDir: string): Promise<string | undefined> {
  const info = await stat(backupDir).catch(() => undefined);
  return info?.isDirectory() === true ? undefined : `BACKUP_DIR ${backupDir} does not exist: mount the backups volume there, or set BACKUP_DIR to where it is mounted`;
}

/** Without a remote target to download from, a missing BACKUP_DIR is a usage error, said before the lock would create the folder. */
export async function requireVolume(backupDir: string, remotes: boolean): Promise<void> {
  const missing = remotes ? undefined : await missingVolume(backupDir);
  if (missing !== undefined) throw new UsageError(missing);
}

/** A file name without the suffixes a setting adds: app.dump.zst.age -> app.dump. */
function bareName(file: string): string {
  return file.replace(/\.age$/, '').replace(/\.dump\.zst$/, '.dump');
}

/**
 * Resolves what the user typed (`trust` says which runs may count as the newest): an absolute path, a path relative to BACKUP_DIR, a run id, a bare file
 * name (newest run that has it), or `latest`. Safety backups (pre-restore/) are reached only by path or
 * run id, so that "the newest app.dump" never means the copy taken just before the last restore.
 */
export async function resolveRef(backupDir: string, ref: string, trust: RunTrust): Promise<Selection> {
  if (isAbsolute(ref) || ref.includes('/')) {
    const path = isAbsolute(ref) ? ref : join(backupDir, ref);
    const found = await fromPath(path);
    if (found !== undefined) return found;
    throw new UsageError(`${path} does not exist; run \`backup-sidecar list\` to see the runs`);
  }
  const runs = (await listRuns(backupDir)).filter((r) => r.manifest !== undefined);
  // A run dated in the future is never "the newest": `latest` and bare names skip it (its id still
  // reaches it). An unsigned or wrongly signed one is found, and the signature check then says why it is refused.
  // Base backups (restore --pitr) are reached by run id only: `latest` is the newest run of dumps.
  const regular = runs.filter((r) => r.tier !== PRE_RESTORE && !isFutureDated(r.time, trust.notAfter) && seriesOf(r.manifest!) === 'dumps');
  if (ref === 'latest') {
    const run = regular[0];
    if (run === undefined) throw new UsageError((await missingVolume(backupDir)) ?? `there is no backup run in ${backupDir} yet; run \`backup-sidecar backup\` first`);
    return { runDir: run.dir, manifest: run.manifest!, artifacts: run.manifest!.artifacts };
  }
  if (parseRunId(ref) !== undefined) {
    const run = runs.find((r) => r.id === ref);
    if (run !== undefined) return { runDir: run.dir, manifest: run.manifest!, artifacts: run.manifest!.artifacts };
  }
  for (const run of regular) {
    // The plain name finds an encrypted file (.age) and a zstd dump (.dump.zst) too: app.dump is the newest dump of app.
    const artifact = run.manifest!.artifacts.find((a) => a.file === ref || bareName(a.file) === bareName(ref));
    if (artifact !== undefined) return { runDir: run.dir, manifest: run.manifest!, artifacts: [artifact] };
  }
  throw new UsageError((await missingVolume(backupDir)) ?? `no run or file named "${ref}" in ${backupDir}; run \`backup-sidecar list\` to see the runs`);
}
