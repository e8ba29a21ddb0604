import { createInterface } from 'node:readline';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { MediaCompression, MediaFolder } from '../../config/config.ts';
import { RunError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { ASIDE_PREFIX, STAGING_PREFIX, tarballFileName } from '../../naming.ts';
import type { BackupSource, Production } from '../source.ts';

/** GNU tar's switch for a tarball's compression, writing or reading. */
export const COMPRESS_FLAG: Record<MediaCompression, string> = { gzip: '--gzip', zstd: '--zstd' };

/** GNU tar's words for a file that changed or vanished while it was read: a warning, not a failure. */
const CHANGED = /file changed as we read it|File removed before we read it|file is unchanged; not dumped|socket ignored/i;

/** A media folder is a folder that exists: a missing mount must fail the run, not back up nothing. */
export async function checkFolder(folder: MediaFolder): Promise<void> {
  const info = await stat(folder.path).catch(() => undefined);
  if (info === undefined) throw new RunError(`media folder ${folder.name}: ${folder.path} does not exist; mount it or fix MEDIA_PATHS`);
  if (!info.isDirectory()) throw new RunError(`media folder ${folder.name}: ${folder.path} is not a folder; fix MEDIA_PATHS`);
}

/** Counts everything below `dir` (files, folders, links), not `dir` itself. */
export async function countEntries(dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true })).length;
}

/** Entries below `dir`, its regular files, and their bytes (hard links counted once), as the manifest has them. */
export async function measureTree(dir: string): Promise<{ entries: number; files: number; bytes: number }> {
  const all = await readdir(dir, { recursive: true, withFileTypes: true });
  const seen = new Set<string>();
  let files = 0;
  let bytes = 0;
  for (const entry of all) {
    if (!entry.isFile()) continue;
    files++;
    const info = await lstat(join(entry.parentPath, entry.name), { bigint: true });
    const inode = `${info.dev}:${info.ino}`;
    if (info.nlink > 1n && seen.has(inode)) continue;
    seen.add(inode);
    bytes += Number(info.size);
  }
  return { entries: all.length, files, bytes };
}

/**
 * One member in tar's `-vv` listing: type and mode, owner, size (or device numbers), date, name (escaped,
 * so one line each). Hard links ("h") carry no data of their own.
 */
const MEMBER = /^([-hdlpcbsC])\S{9}\S*\s+\S+\s+(\d+)(?:,\s*\d+)?\s+\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?\s(.*)$/;

/** One media folder, archived with GNU tar (pax format, sorted, compressed) to stdout. */
export class MediaSource implements BackupSource {
  readonly kind = 'media';
  readonly name: string;
  readonly fileName: string;

  private readonly folder: MediaFolder;
  private readonly exclude: string[];
  private readonly compression: MediaCompression;
  private readonly log: Logger;

  constructor(folder: MediaFolder, exclude: string[], compression: MediaCompression, log: Logger) {
    this.folder = folder;
    this.exclude = exclude;
    this.compression = compression;
    this.log = log;
    this.name = folder.name;
    this.fileName = tarballFileName(folder.name, compression);
  }

  async open(): Promise<Production> {
    await checkFolder(this.folder);
    const args = [
      '--create',
      '--file=-',
      `--directory=${this.folder.path}`,
      '--format=posix',
      // atime and ctime would make every archive differ; mtime is what a restore needs.
      '--pax-option=delete=atime,delete=ctime',
      '--sort=name',
      COMPRESS_FLAG[this.compression],
      ...this.exclude.map((p) => `--exclude=${p}`),
      // A restore's own staging and aside folders are never app data.
      `--exclude=${STAGING_PREFIX}*`,
      `--exclude=${ASIDE_PREFIX}*`,
      // With the archive on stdout, -vv lists the members on stderr, one ls-style line each (sizes for the
      // manifest); tar's messages start with "tar: ", so the two are told apart without buffering.
      '--verbose',
      '--verbose',
      '.',
    ];
    this.log.debug({ media: this.name, args }, 'starting tar');
    const tar = execa('tar', args, { stdin: 'ignore', buffer: false, encoding: 'buffer', reject: false });
    let entries = 0;
    let files = 0;
    let bytes = 0;
    const messages: string[] = [];
    createInterface({ input: tar.stderr }).on('line', (line) => {
      const member = MEMBER.exec(line);
      if (member !== null) {
        if (member[3] === './') return;
        entries++;
        if (member[1] === '-' || member[1] === 'h') files++;
        if (member[1] === '-') bytes += Number(member[2]);
      } else if (line.trim() !== '') {
        messages.push(line.replace(/^tar: /, '').trim());
      }
    });
    let warnings: string[] = [];
    const done = (async () => {
      const result = await tar;
      // Exit 1: some files changed or vanished while read, a warning. Anything else non-zero is fatal.
      const changed = messages.filter((l) => CHANGED.test(l));
      if (result.exitCode === 1 && changed.length > 0) {
        warnings = changed.map((l) => `${this.name}: ${l}`);
        for (const w of warnings) this.log.warn({ media: this.name }, w);
      } else if (result.exitCode !== 0 || result.signal !== undefined) {
        const why = messages.find((l) => !CHANGED.test(l)) ?? (result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`);
        throw new RunError(`tar of media folder ${this.name} (${this.folder.path}) failed: ${why}`);
      }
    })();
    return {
      stream: tar.stdout,
      done,
      abort: () => tar.kill(),
      describe: async () => ({
        kind: 'media',
        format: 'tar',
        compression: this.compression,
        path: this.folder.path,
        entries,
        files,
        bytes,
        warnings,
      }),
    };
  }
}
