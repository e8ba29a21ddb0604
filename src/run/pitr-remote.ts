import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RunError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MANIFEST, type RunTier } from '../naming.ts';
import { parseManifest, seriesOfFiles, type BaseBackupArtifact } from '../manifest.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { FILE_MODE } from '../util/fs.ts';
import { HashingStream } from '../util/hash.ts';
import type { WalFile } from '../wal/archive.ts';
import { WAL_SIG_SUFFIX } from '../wal/signature.ts';

/**
 * restore --pitr from the remote targets, when the volume cannot serve it (the host was lost, or WAL is
 * missing): base backup runs and WAL files found there. Names come from listings and are validated
 * (WAL_FILE, run ids); contents are trusted only after the checks a local restore makes (fetchRun's
 * signature and sha256 checks for the run; the stored sha256, then the WAL signatures, for the WAL).
 */

/** A base backup that only a remote target holds: where it is, and what its manifest says. */
export interface RemoteBase {
  runId: string;
  /** Where it lands in the volume once fetched. */
  runDir: string;
  artifact: BaseBackupArtifact;
  from: { store: OffsiteStore; tier: RunTier };
}

/** Base backup runs complete in the remote targets and not in the volume (the first target holding one wins). */
export async function remoteBases(backupDir: string, targets: readonly OffsiteStore[], inVolume: ReadonlySet<string>): Promise<RemoteBase[]> {
  const found = new Map<string, RemoteBase>();
  for (const store of targets) {
    for (const run of await store.listRuns()) {
      if (!run.complete || found.has(run.id) || inVolume.has(run.id) || seriesOfFiles(run.files.map((f) => f.file)) !== 'basebackup') continue;
      const manifest = parseManifest(await store.getManifestText(run.tier, run.id), `${store.url}/${run.tier}/${run.id}/${MANIFEST}`, { id: run.id, tier: run.tier });
      const artifact = manifest.artifacts.find((a): a is BaseBackupArtifact => a.kind === 'basebackup');
      if (artifact !== undefined) found.set(run.id, { runId: run.id, runDir: join(backupDir, run.tier, run.id), artifact, from: { store, tier: run.tier } });
    }
  }
  return [...found.values()];
}

/** Where a remote WAL file comes from, and whether its signature is there too. */
export interface WalSource {
  store: OffsiteStore;
  signed: boolean;
}

/**
 * The WAL files in the remote targets that the volume lacks, as they will be once fetched into `dir`: a
 * complete segment the volume has wins, a remote complete one beats a partial one, and the first target
 * listing a file is the one it comes from.
 */
export async function remoteWal(targets: readonly OffsiteStore[], kept: ReadonlyMap<string, WalFile>, dir: string): Promise<{ files: Map<string, WalFile>; sources: Map<string, WalSource> }> {
  const files = new Map<string, WalFile>();
  const sources = new Map<string, WalSource>();
  for (const store of targets) {
    const names = await store.listWal();
    const listed = new Set(names);
    for (const file of names) {
      if (file.endsWith(WAL_SIG_SUFFIX)) continue;
      const partial = file.includes('.partial.');
      const name = file.replace(/(\.partial)?\.zst(\.age)?$/, '');
      const better = (have: WalFile | undefined) => have === undefined || (have.partial && !partial);
      if (!better(kept.get(name)) || !better(files.get(name))) continue;
      files.set(name, { name, file, path: join(dir, file), compressed: true, encrypted: file.endsWith('.age'), partial });
      sources.set(file, { store, signed: listed.has(`${file}${WAL_SIG_SUFFIX}`) });
    }
  }
  return { files, sources };
}

/** Downloads the files of `plan` that come from a remote target into their place, each checked against the sha256 stored with it, through a temporary name. */
export async function fetchWal(plan: readonly WalFile[], sources: ReadonlyMap<string, WalSource>, log: Logger): Promise<number> {
  let fetched = 0;
  for (const file of plan) {
    const source = sources.get(file.file);
    if (source === undefined) continue;
    await download(source.store, file.file, file.path);
    if (source.signed) await download(source.store, `${file.file}${WAL_SIG_SUFFIX}`, `${file.path}${WAL_SIG_SUFFIX}`);
    fetched += 1;
  }
  if (fetched > 0) log.info({ files: fetched }, 'WAL fetched from the remote targets');
  return fetched;
}

async function download(store: OffsiteStore, file: string, to: string): Promise<void> {
  const tmp = `${to}.tmp`;
  const hasher = new HashingStream();
  try {
    const { stream, sha256 } = await store.getWal(file);
    await pipeline(stream, hasher, createWriteStream(tmp, { flags: 'w', mode: FILE_MODE }));
    const got = hasher.digest();
    if (sha256 !== undefined && sha256 !== got) throw new RunError(`${store.url} WAL file ${file} is damaged: its sha256 is ${got}, the one stored with it ${sha256}; nothing was restored`);
    await rename(tmp, to);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error instanceof RunError ? error : new RunError(`download of WAL file ${file} from ${store.url} failed: ${describe(error)}`);
  }
}
