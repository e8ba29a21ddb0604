import { createWriteStream } from 'node:fs';
import { appendFile, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { RunError, UsageError, describe, firstLine } from '../errors.ts';
import type { Config } from '../config/config.ts';
import type { SigningKeys } from '../crypto/signing.ts';
import type { BaseBackupArtifact } from '../manifest.ts';
import type { WalFile } from './archive.ts';
import { checkWalSignature } from './signature.ts';
import { HISTORY_FILE, formatLsn, parseLsn, parseSegment, segmentFile, segmentName } from './lsn.ts';

/**
 * A data folder that recovers by itself, from a base backup and the WAL kept after it: what restore --pitr
 * writes and the PITR drill starts a server on.
 */

/** Where recovery stops: the end of the WAL, a time, or a WAL position. */
export type PitrTarget = { kind: 'latest' } | { kind: 'time'; time: Date } | { kind: 'lsn'; lsn: bigint };

/** The WAL files the restored folder holds, and from where recovery reads them (relative to the data folder). */
export const RESTORE_WAL_DIR = 'backup_sidecar_wal';

/** `latest`, a WAL position (0/3000060), or a time (a zone is needed to be exact; without one, UTC). */
export function parseTarget(text: string): PitrTarget {
  if (text === 'latest') return { kind: 'latest' };
  const lsn = parseLsn(text);
  if (lsn !== undefined) return { kind: 'lsn', lsn };
  const zoned = /(Z|[+-]\d\d(:?\d\d)?)$/i.test(text.trim()) ? text.trim() : `${text.trim()}Z`;
  const time = new Date(zoned.replace(' ', 'T'));
  if (Number.isNaN(time.getTime())) throw new UsageError(`--pitr expects latest, a time such as 2026-11-04T10:41:07Z, or a WAL position such as 0/3000060; got "${text.slice(0, 100)}"`);
  return { kind: 'time', time };
}

export interface WalPlan {
  /** The segments from the base backup's start on, in order, on its timeline (and the history files). */
  files: WalFile[];
  first: string;
  last: string;
  /** The first missing segment before the newest one kept: recovery would stop there. */
  gap: string | undefined;
  /** Whether the WAL reaches the base backup's end point (else it cannot even become consistent). */
  reachesEnd: boolean;
}

/** Which WAL files a recovery from `base` reads, and whether they are complete. Pure. */
export function planWal(base: BaseBackupArtifact, kept: ReadonlyMap<string, WalFile>): WalPlan {
  const size = base.walSegmentSize;
  const startSeg = parseLsn(base.startLsn)! / BigInt(size);
  const endName = segmentName(base.timeline, parseLsn(base.endLsn)!, size);
  const mine = [...kept.values()]
    .map((f) => ({ f, seg: parseSegment(f.name, size) }))
    .filter((x) => x.seg !== undefined && x.seg.timeline === base.timeline && x.seg.segNo >= startSeg)
    .sort((a, b) => (a.seg!.segNo < b.seg!.segNo ? -1 : 1));
  const files: WalFile[] = [];
  let gap: string | undefined;
  let expected = startSeg;
  for (const { f, seg } of mine) {
    if (seg!.segNo !== expected) {
      gap = segmentFile(base.timeline, expected, size);
      break;
    }
    files.push(f);
    expected += 1n;
  }
  const last = files.at(-1)?.name ?? '';
  const histories = [...kept.values()].filter((f) => HISTORY_FILE.test(f.name));
  return { files: [...histories, ...files], first: segmentName(base.timeline, parseLsn(base.startLsn)!, size), last, gap, reachesEnd: last !== '' && last >= endName };
}

/** Opens an encrypted WAL file as plaintext (ENCRYPTION_IDENTITY_FILE or the passphrase). */
export type WalDecrypter = (path: string) => Promise<Readable>;

/** How the WAL of a recovery is read: decrypted when encrypted, its signatures checked when a key is set. */
export interface WalAccess {
  decrypt: WalDecrypter | undefined;
  signing: SigningKeys | undefined;
  /** Accept archived WAL without a signature (archived before the key was set). */
  trustUnsigned: boolean;
}

/** Decompresses (or copies) one WAL file into the restored folder under its segment name. */
async function placeWal(file: WalFile, dir: string, decrypt: WalDecrypter | undefined): Promise<void> {
  const to = join(dir, file.name);
  if (!file.compressed) {
    await copyFile(file.path, to);
    return;
  }
  if (file.encrypted && decrypt === undefined) throw new UsageError(`${file.path} is encrypted: set ENCRYPTION_IDENTITY_FILE or ENCRYPTION_PASSPHRASE to read it`);
  const zstd = execa('zstd', ['-d', '-q', '-c', ...(file.encrypted ? [] : [file.path])], { stdin: file.encrypted ? 'pipe' : 'ignore', stdout: 'pipe', buffer: { stdout: false }, encoding: 'buffer', reject: false });
  try {
    await Promise.all([
      file.encrypted ? pipeline(await decrypt!(file.path), zstd.stdin!) : Promise.resolve(),
      pipeline(zstd.stdout, createWriteStream(to, { mode: 0o600 })),
    ]);
  } catch (error) {
    zstd.kill();
    throw new RunError(`WAL segment ${file.path} cannot be read (damaged, or the wrong key?): ${describe(error)}`);
  }
  const result = await zstd;
  if (result.exitCode !== 0) throw new RunError(`WAL segment ${file.path} does not decompress (damaged?): ${firstLine(new TextDecoder().decode(result.stderr as Uint8Array))}`);
}

/**
 * Makes `pgdata` (existing, empty) a data folder that recovers by itself: the base backup unpacked, the
 * WAL it needs inside it, recovery.signal, and the recovery settings (reading WAL only from inside).
 */
export async function buildRecoveryFolder(archive: string, wal: WalPlan, target: PitrTarget, why: string, pgdata: string, signal: AbortSignal | undefined, access: WalAccess): Promise<void> {
  // Every archived file's signature first: a forged segment stops the restore before anything is written.
  // pg_receivewal's own files (the segment being written) are the volume's and cannot be signed yet.
  for (const file of wal.files) if (file.compressed) await checkWalSignature(file.path, file.file, access.signing, access.trustUnsigned);
  const unpack = await execa('zstd', ['-d', '-q', '-c', archive], { buffer: { stdout: false }, reject: false, cancelSignal: signal }).pipe('tar', ['--extract', '--file=-', `--directory=${pgdata}`, '--no-same-owner'], { reject: false, cancelSignal: signal });
  if (unpack.exitCode !== 0) throw new RunError(`cannot unpack ${archive} into ${pgdata}: ${firstLine(unpack.stderr)}`);
  const walDir = join(pgdata, RESTORE_WAL_DIR);
  await mkdir(walDir, { mode: 0o700 });
  for (const file of wal.files) await placeWal(file, walDir, access.decrypt);
  await appendFile(join(pgdata, 'postgresql.auto.conf'), recoveryLines(target, why).join('\n'));
  await writeFile(join(pgdata, 'recovery.signal'), '');
}

function recoveryLines(target: PitrTarget, why: string): string[] {
  const stop =
    target.kind === 'time'
      ? [`recovery_target_time = '${target.time.toISOString().replace('T', ' ').replace('Z', '+00')}'`]
      : target.kind === 'lsn'
        ? [`recovery_target_lsn = '${formatLsn(target.lsn)}'`]
        : [];
  return [
    '',
    `# backup-sidecar ${why}: the WAL is in ${RESTORE_WAL_DIR}/, inside this folder.`,
    `restore_command = 'cp "${RESTORE_WAL_DIR}/%f" "%p"'`,
    ...stop,
    "recovery_target_action = 'promote'",
    "recovery_target_timeline = 'latest'",
    '',
  ];
}


/** How to read `files`: what opens the encrypted ones (ENCRYPTION_IDENTITY_FILE or the passphrase), and the signing keys. */
export async function walAccess(config: Pick<Config, 'decryption' | 'signing'>, files: readonly WalFile[], trustUnsigned: boolean): Promise<WalAccess> {
  const decrypt = files.some((f) => f.encrypted) ? (await import('../crypto/age.ts')).fileDecrypter(config.decryption, 'the WAL archive') : undefined;
  return { decrypt, signing: config.signing, trustUnsigned };
}
