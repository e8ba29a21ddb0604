import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { describe } from '../errors.ts';
import type { RunCipher } from '../crypto/age.ts';
import type { SigningKeys } from '../crypto/signing.ts';
import type { Logger } from '../log.ts';
import { AGE_SUFFIX } from '../naming.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { hashFile } from '../util/hash.ts';
import { pathExists, readJsonFile, writeFileAtomic } from '../util/fs.ts';
import { STREAM_DIR, archivedWal, compressInto, walDir } from './archive.ts';
import { WAL_SIG_SUFFIX } from './signature.ts';

/** wal/.shipped.json: which archived WAL files each remote target holds, by its URL. */
const SHIPPED = '.shipped.json';
const shippedFile = z.object({ targets: z.record(z.string(), z.array(z.string())) });
type Shipped = z.infer<typeof shippedFile>;

async function readShipped(backupDir: string): Promise<Shipped> {
  return (await readJsonFile(join(walDir(backupDir), SHIPPED), shippedFile)) ?? { targets: {} };
}

/** How many archived WAL files each target does not hold yet. */
export async function walNotOffsite(backupDir: string, urls: readonly string[]): Promise<Map<string, number>> {
  const archived = (await archivedWal(backupDir)).map((f) => f.file);
  const shipped = await readShipped(backupDir);
  return new Map(urls.map((url) => [url, archived.filter((n) => !(shipped.targets[url] ?? []).includes(n)).length]));
}

/**
 * Uploads every archived WAL file a target does not hold yet, oldest first, with its signature, each
 * checked there by size (and sha256 in S3). A target that fails is left for the next round (the daemon tries every 10 s); the
 * others go on. What each target holds is recorded in wal/.shipped.json.
 */
export async function shipWal(backupDir: string, targets: readonly OffsiteStore[], log: Logger): Promise<void> {
  if (targets.length === 0) return;
  const archived = await archivedWal(backupDir);
  const names = new Set(archived.map((f) => f.file));
  const shipped = await readShipped(backupDir);
  const save = () => writeFileAtomic(join(walDir(backupDir), SHIPPED), `${JSON.stringify(shipped)}\n`);
  for (const target of targets) {
    // Names pruned since are forgotten: the record stays as small as the archive.
    const held = new Set((shipped.targets[target.url] ?? []).filter((n) => names.has(n)));
    shipped.targets[target.url] = [...held];
    const pending = archived.filter((f) => !held.has(f.file));
    let sent = 0;
    try {
      for (const file of pending) {
        const { sha256, size } = await hashFile(file.path);
        await target.putWal(file.file, file.path, sha256, size);
        // The signature after the file: a file without one is refused (loudly), a signature alone is ignored.
        const sig = `${file.path}${WAL_SIG_SUFFIX}`;
        if (await pathExists(sig)) {
          const signed = await hashFile(sig);
          await target.putWal(`${file.file}${WAL_SIG_SUFFIX}`, sig, signed.sha256, signed.size);
        }
        held.add(file.file);
        shipped.targets[target.url] = [...held];
        sent += 1;
        if (sent % 20 === 0) await save();
      }
    } catch (error) {
      log.error({ target: target.url, err: describe(error), waiting: pending.length - sent }, 'WAL not shipped to a remote target; the next round tries again');
    }
    if (sent > 0) log.info({ target: target.url, files: sent, last: pending[sent - 1]?.file }, 'WAL shipped');
  }
  await save();
}

/** The segment being written, as last shipped: a new copy goes only when it changed. */
export interface PartialShipped {
  file: string;
  mtimeMs: number;
  size: number;
}

/**
 * WAL_PARTIAL_INTERVAL: a snapshot of the segment pg_receivewal is still writing, compressed (and
 * encrypted, and signed) and stored in every remote target as <segment>.partial.zst[.age], replacing the previous
 * one; once the segment moves on, the older partial copy is removed (the complete segment is shipped by
 * shipWal). Returns what was shipped, for the next round to compare with.
 */
export async function shipPartial(backupDir: string, targets: readonly OffsiteStore[], cipher: RunCipher | undefined, signing: SigningKeys | undefined, last: PartialShipped | undefined, log: Logger): Promise<PartialShipped | undefined> {
  if (targets.length === 0) return last;
  const stream = join(walDir(backupDir), STREAM_DIR);
  const entry = (await readdir(stream).catch((): string[] => [])).filter((n) => /^[0-9A-F]{24}\.partial$/.test(n)).sort().at(-1);
  if (entry === undefined) return last;
  const info = await stat(join(stream, entry)).catch(() => undefined);
  if (info === undefined) return last;
  const file = `${entry}.zst${cipher === undefined ? '' : AGE_SUFFIX}`;
  if (last !== undefined && last.file === file && last.mtimeMs === info.mtimeMs && last.size === info.size) return last;
  const tmp = join(walDir(backupDir), `.${file}`);
  const sig = `${tmp}${WAL_SIG_SUFFIX}`;
  try {
    const { sha256, size } = await compressInto(join(stream, entry), tmp, cipher, signing, file);
    const signed = signing === undefined ? undefined : await hashFile(sig);
    for (const target of targets) {
      await (async () => {
        await target.putWal(file, tmp, sha256, size);
        if (signed !== undefined) await target.putWal(`${file}${WAL_SIG_SUFFIX}`, sig, signed.sha256, signed.size);
      })().catch((error: unknown) => log.warn({ target: target.url, err: describe(error) }, 'the segment being written was not shipped; the next round tries again'));
      if (last !== undefined && last.file !== file) await target.deleteWal([last.file, `${last.file}${WAL_SIG_SUFFIX}`]).catch(() => undefined);
    }
  } finally {
    await rm(tmp, { force: true });
    await rm(sig, { force: true });
  }
  return { file, mtimeMs: info.mtimeMs, size: info.size };
}
