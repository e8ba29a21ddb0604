/**
 * Names of runs, tiers and artifacts: formatted and parsed in one place. A name that does not parse
 * is foreign: never listed as ours, never touched.
 */

export const TIERS = ['daily', 'weekly', 'monthly', 'yearly'] as const;
export type Tier = (typeof TIERS)[number];
/** Safety backups taken before a restore live beside the tiers, with their own retention. */
export const PRE_RESTORE = 'pre-restore';
export type RunTier = Tier | typeof PRE_RESTORE;
export const RUN_TIERS: readonly RunTier[] = [...TIERS, PRE_RESTORE];
/** Runs in progress; moved into their tier folder only when complete. */
export const PARTIAL_DIR = '.partial';
export const MANIFEST = 'manifest.json';
/** The manifest's HMAC (BACKUP_SIGNING_KEY), beside it. */
export const SIGNATURE = 'manifest.json.sig';
/** In a run flagged for a size drop: a person's acknowledgement (`backup-sidecar ack`), which lets retention go on. */
export const ACK_FILE = 'ack.json';
/** The volume's lock (a folder, made by proper-lockfile). */
export const LOCK_FILE = '.lock';

/** The tool's own folders inside a media folder during a restore: never archived, never app data. */
export const STAGING_PREFIX = '.backup-sidecar-restore-';
export const ASIDE_PREFIX = '.backup-sidecar-old-';

const RUN_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:_([A-Za-z0-9._-]{1,64}))?$/;

/** Makes a label safe for a file name: letters, digits, '.', '_', '-'; at most 64 characters. */
export function labelSlug(label: string | undefined): string | undefined {
  if (label === undefined) return undefined;
  const slug = label
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return slug === '' ? undefined : slug;
}

/** `YYYYMMDDTHHMMSSZ` of a UTC time, plus `_<label>` when a label is set. */
export function formatRunId(start: Date, label?: string): string {
  const stamp = start.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  const slug = labelSlug(label);
  return slug === undefined ? stamp : `${stamp}_${slug}`;
}

export interface ParsedRunId {
  id: string;
  time: Date;
  label: string | undefined;
}

/** Parses a run id; undefined for anything that is not one of ours. */
export function parseRunId(name: string): ParsedRunId | undefined {
  const m = RUN_ID.exec(name);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, label] = m;
  const time = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  // Rejects 20261345T... and the like: the date must survive the round trip.
  if (Number.isNaN(time.getTime()) || formatRunId(time) !== name.slice(0, 16)) return undefined;
  return { id: name, time, label };
}

/**
 * A file-name-safe, reversible form of a database name: anything but letters, digits, '.', '_' and '-'
 * becomes %XX of its UTF-8 bytes (a leading '.' too, so no dump is a hidden file).
 */
export function fileSafe(name: string): string {
  return Array.from(new TextEncoder().encode(name), (byte, i) => {
    const c = String.fromCharCode(byte);
    const plain = byte < 0x80 && /[A-Za-z0-9_.-]/.test(c) && !(i === 0 && c === '.');
    return plain ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

/** A media folder's name (MEDIA_PATHS): also the stem of its tarball, so one safe path segment. */
export const MEDIA_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** zstd around a dump (POSTGRES_COMPRESSION=zstd). */
export const ZST_SUFFIX = '.zst';

/** A database's dump: `<name>.dump`, or `<name>.dump.zst` when zstd wraps it. */
export function dumpFileName(database: string, zstd = false): string {
  return `${fileSafe(database)}.dump${zstd ? ZST_SUFFIX : ''}`;
}

export function tarballFileName(media: string, compression: 'gzip' | 'zstd'): string {
  return `${media}.tar.${compression === 'gzip' ? 'gz' : 'zst'}`;
}

/** Roles and tablespaces of the server (POSTGRES_GLOBALS); no database dump ends in .sql. */
export const GLOBALS_FILE = 'globals.sql';
/** A base backup (pg_basebackup's tar, through zstd). */
export const BASE_BACKUP_FILE = 'base.tar.zst';
/** The WAL archive, under BACKUP_DIR: pg_receivewal's folder, and compressed segments by timeline. */
export const WAL_DIR = 'wal';

/** Encrypted files (age, age-encryption.org/v1) carry this suffix. */
export const AGE_SUFFIX = '.age';

/** Files a run folder may hold; anything else in it is foreign. */
const ARTIFACT_FILE = /^(?:[A-Za-z0-9_.%-]+\.dump(?:\.zst)?|[A-Za-z0-9][A-Za-z0-9_.-]*\.tar\.(?:gz|zst)|globals\.sql)(?:\.age)?$/;

export function isRunFile(file: string): boolean {
  return file === MANIFEST || file === SIGNATURE || ARTIFACT_FILE.test(file);
}

/** `<prefix>/<tier>/<run-id>/<file>`: the volume's layout, mirrored in the bucket. */
export function objectKey(prefix: string, tier: RunTier, runId: string, file: string): string {
  return `${prefix === '' ? '' : `${prefix}/`}${tier}/${runId}/${file}`;
}

/**
 * A WAL file's name as kept in the archive and the remote targets: a segment or timeline history file
 * compressed (.zst), maybe encrypted (.age), the segment still being written (.partial.zst), or the
 * signature of one of those (.sig). Anything else under wal/ is not ours and is never read.
 */
export const WAL_FILE = /^(?:[0-9A-F]{24}(?:\.partial)?|[0-9A-F]{8}\.history)\.zst(?:\.age)?(?:\.sig)?$/;

/** The prefix under which a remote target keeps the WAL: <prefix>/wal/. */
export function walPrefix(prefix: string): string {
  return `${prefix === '' ? '' : `${prefix}/`}${WAL_DIR}/`;
}

/** Where a WAL file (<segment>.zst, or .zst.age encrypted) lies in a remote target: <prefix>/wal/<timeline>/<file>. */
export function walKey(prefix: string, file: string): string {
  return `${walPrefix(prefix)}${file.slice(0, 8)}/${file}`;
}

export interface ParsedKey {
  tier: RunTier;
  run: ParsedRunId;
  file: string;
}

/** Parses an object key made by objectKey; undefined for any key this tool did not create. */
export function parseObjectKey(prefix: string, key: string): ParsedKey | undefined {
  const head = prefix === '' ? '' : `${prefix}/`;
  if (!key.startsWith(head)) return undefined;
  const parts = key.slice(head.length).split('/');
  if (parts.length !== 3) return undefined;
  const [tier, id, file] = parts as [string, string, string];
  if (!(RUN_TIERS as readonly string[]).includes(tier)) return undefined;
  const run = parseRunId(id);
  if (run === undefined || !isRunFile(file)) return undefined;
  return { tier: tier as RunTier, run, file };
}
