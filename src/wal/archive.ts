import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { RunError, firstLine } from '../errors.ts';
import type { RunCipher } from '../crypto/age.ts';
import type { SigningKeys } from '../crypto/signing.ts';
import { AGE_SUFFIX, WAL_DIR } from '../naming.ts';
import { FILE_MODE, ensureDir, fsyncDir, pathExists } from '../util/fs.ts';
import { HashingStream } from '../util/hash.ts';
import { HISTORY_FILE, walGaps, walNotNeeded } from './lsn.ts';
import { WAL_SIG_SUFFIX, writeWalSignature } from './signature.ts';

/** pg_receivewal's own folder: the segment it is writing (.partial) and the last complete one it resumes after. */
export const STREAM_DIR = 'stream';

const SEGMENT = /^[0-9A-F]{24}$/;

export function walDir(backupDir: string): string {
  return join(backupDir, WAL_DIR);
}

/** Where a complete segment (or history file) is kept: wal/<timeline>/<name>.zst, or .zst.age when encrypted. */
export function archivedPath(backupDir: string, name: string, encrypted: boolean): string {
  return join(walDir(backupDir), name.slice(0, 8), `${name}.zst${encrypted ? AGE_SUFFIX : ''}`);
}

/**
 * Compresses (and with a cipher, encrypts) one file into `to` through a temporary name: `to` is complete
 * or absent, never half-written. With a signing key, <to>.sig (over `signedName`, the name it is kept
 * under) is written before `to` appears, so a complete file is never unsigned. Returns its sha256 and size.
 */
export async function compressInto(from: string, to: string, cipher: RunCipher | undefined, signing?: SigningKeys, signedName = basename(to)): Promise<{ sha256: string; size: number }> {
  const tmp = `${to}.tmp`;
  await rm(tmp, { force: true });
  const zstd = execa('zstd', ['-q', '-c', '-3'], { stdin: 'pipe', stdout: 'pipe', buffer: { stdout: false }, encoding: 'buffer', reject: false });
  const hasher = new HashingStream();
  const out = createWriteStream(tmp, { mode: FILE_MODE, flags: 'wx', flush: true });
  try {
    await Promise.all([pipeline(createReadStream(from), zstd.stdin), cipher === undefined ? pipeline(zstd.stdout, hasher, out) : pipeline(zstd.stdout, cipher.encryptor(), hasher, out)]);
    const result = await zstd;
    if (result.exitCode !== 0) throw new RunError(`zstd failed on ${from}: ${firstLine(new TextDecoder().decode(result.stderr as Uint8Array))}`);
    const digest = { sha256: hasher.digest(), size: hasher.bytes };
    if (signing !== undefined) await writeWalSignature(to, signedName, digest.sha256, signing);
    await rename(tmp, to);
    return digest;
  } catch (error) {
    zstd.kill();
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Moves what pg_receivewal completed into the archive: each complete segment and history file is
 * compressed (zstd) into wal/<timeline>/, then the raw segment is removed, except the newest complete one,
 * which pg_receivewal resumes after when it restarts (servers before 15 cannot say where the slot stands).
 * Idempotent: a segment already archived is only cleaned up. With a signing key, each is signed
 * (<file>.sig beside it). Returns the names archived now.
 */
export async function archiveCompleted(backupDir: string, cipher?: RunCipher, signing?: SigningKeys): Promise<string[]> {
  const stream = join(walDir(backupDir), STREAM_DIR);
  const names = (await readdir(stream).catch(() => [])).filter((n) => SEGMENT.test(n) || HISTORY_FILE.test(n)).sort();
  const segments = names.filter((n) => SEGMENT.test(n));
  const archived: string[] = [];
  for (const name of names) {
    const to = archivedPath(backupDir, name, cipher !== undefined);
    if (!(await pathExists(archivedPath(backupDir, name, false))) && !(await pathExists(archivedPath(backupDir, name, true)))) {
      await ensureDir(join(walDir(backupDir), name.slice(0, 8)));
      await compressInto(join(stream, name), to, cipher, signing);
      await fsyncDir(join(walDir(backupDir), name.slice(0, 8)));
      archived.push(name);
    }
    if (SEGMENT.test(name) && name !== segments.at(-1)) await rm(join(stream, name), { force: true });
  }
  return archived;
}

/** A WAL file restore can use: compressed in the archive, raw in pg_receivewal's folder, or the segment it is still writing. */
export interface WalFile {
  /** The segment (or history file) name. */
  name: string;
  /** The file's own name as kept (<name>.zst, <name>.zst.age, or raw); also its name in remote targets. */
  file: string;
  path: string;
  compressed: boolean;
  /** age-encrypted (ENCRYPTION_*): decrypted with ENCRYPTION_IDENTITY_FILE or the passphrase to be read. */
  encrypted: boolean;
  /** pg_receivewal's .partial: the newest WAL, not yet a whole segment (restore uses it for the last stretch). */
  partial: boolean;
}

/** The WAL files in the compressed archive (not pg_receivewal's own folder), by file name. */
export async function archivedWal(backupDir: string): Promise<WalFile[]> {
  return [...(await listWal(backupDir)).values()].filter((f) => f.compressed).sort((a, b) => a.file.localeCompare(b.file));
}

/** Every WAL segment and history file kept, by name (an archived copy wins over a raw one). */
export async function listWal(backupDir: string): Promise<Map<string, WalFile>> {
  const files = new Map<string, WalFile>();
  const stream = join(walDir(backupDir), STREAM_DIR);
  for (const entry of await readdir(stream).catch(() => [])) {
    const partial = entry.endsWith('.partial');
    const name = partial ? entry.slice(0, -'.partial'.length) : entry;
    if (!SEGMENT.test(name) && !(HISTORY_FILE.test(name) && !partial)) continue;
    const info = await stat(join(stream, entry)).catch(() => undefined);
    if (info?.isFile() === true) files.set(name, { name, file: entry, path: join(stream, entry), compressed: false, encrypted: false, partial });
  }
  for (const timeline of await readdir(walDir(backupDir)).catch(() => [])) {
    if (!/^[0-9A-F]{8}$/.test(timeline)) continue;
    for (const entry of await readdir(join(walDir(backupDir), timeline)).catch(() => [])) {
      const encrypted = entry.endsWith(`.zst${AGE_SUFFIX}`);
      const name = entry.replace(/\.zst(\.age)?$/, '');
      if (!/\.zst(\.age)?$/.test(entry) || !(SEGMENT.test(name) || HISTORY_FILE.test(name))) continue;
      files.set(name, { name, file: entry, path: join(walDir(backupDir), timeline, entry), compressed: true, encrypted, partial: false });
    }
  }
  return files;
}

/**
 * Removes archived WAL that no kept base backup needs (see walNotNeeded), after retention has pruned the
 * base backups, with their signatures. pg_receivewal's own folder is left alone. Returns the files removed
 * (their names in remote targets, where their signatures go too).
 */
export async function pruneWal(backupDir: string, bases: readonly { startLsn: string; walSegmentSize: number }[]): Promise<string[]> {
  const archived = await archivedWal(backupDir);
  const doomed = new Set(walNotNeeded(archived.map((f) => f.name), bases));
  const removed = archived.filter((x) => doomed.has(x.name));
  for (const f of removed) {
    await rm(f.path, { force: true });
    await rm(`${f.path}${WAL_SIG_SUFFIX}`, { force: true });
  }
  return removed.map((f) => f.file).sort();
}

/** What status, metrics and the health check say of the WAL archive. */
export interface WalSummary {
  segments: number;
  newest: string | undefined;
  /** When the newest segment file was last written (the one being written, when there is one). */
  newestAt: Date | undefined;
  /** The first missing segment of each hole: recovery cannot cross one. */
  gaps: string[];
}

export async function walSummary(backupDir: string, segmentSize: number): Promise<WalSummary> {
  const files = [...(await listWal(backupDir)).values()].filter((f) => !HISTORY_FILE.test(f.name)).sort((a, b) => a.name.localeCompare(b.name));
  const newest = files.at(-1);
  const newestAt = newest === undefined ? undefined : (await stat(newest.path).catch(() => undefined))?.mtime;
  return { segments: files.length, newest: newest?.name, newestAt, gaps: walGaps(files.map((f) => f.name), segmentSize) };
}
