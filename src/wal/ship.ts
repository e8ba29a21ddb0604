import { join } from 'node:path';
import { z } from 'zod';
import { describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { OffsiteStore } from '../offsite/store.ts';
import { hashFile } from '../util/hash.ts';
import { readJsonFile, writeFileAtomic } from '../util/fs.ts';
import { listWal, walDir } from './archive.ts';

/** wal/.shipped.json: which archived WAL files each remote target holds, by its URL. */
const SHIPPED = '.shipped.json';
const shippedFile = z.object({ targets: z.record(z.string(), z.array(z.string())) });
type Shipped = z.infer<typeof shippedFile>;

async function readShipped(backupDir: string): Promise<Shipped> {
  return (await readJsonFile(join(walDir(backupDir), SHIPPED), shippedFile)) ?? { targets: {} };
}

/** How many archived WAL files each target does not hold yet. */
export async function walNotOffsite(backupDir: string, urls: readonly string[]): Promise<Map<string, number>> {
  const archived = [...(await listWal(backupDir)).values()].filter((f) => f.compressed).map((f) => f.file);
  const shipped = await readShipped(backupDir);
  return new Map(urls.map((url) => [url, archived.filter((n) => !(shipped.targets[url] ?? []).includes(n)).length]));
}

/**
 * Uploads every archived WAL file a target does not hold yet, oldest first, each checked there by size
 * (and sha256 in S3). A target that fails is left for the next round (the daemon tries every 10 s); the
 * others go on. What each target holds is recorded in wal/.shipped.json.
 */
export async function shipWal(backupDir: string, targets: readonly OffsiteStore[], log: Logger): Promise<void> {
  if (targets.length === 0) return;
  const archived = [...(await listWal(backupDir)).values()].filter((f) => f.compressed).sort((a, b) => a.file.localeCompare(b.file));
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
