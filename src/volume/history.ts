import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/fs.ts';
import { drillReport } from './drill-report.ts';

/**
 * `.history.jsonl` in the volume: one line per backup job and per restore drill, kept whatever retention
 * removes (up to HISTORY_MAX lines), so the status page can chart sizes and durations over many runs.
 */
export const HISTORY = '.history.jsonl';

const count = z.number().int().nonnegative();

export const backupEntry = z.object({
  event: z.literal('backup'),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  /** ok; partial: the run is good, its offsite copy or a hook is not; failed: no run. */
  status: z.enum(['ok', 'partial', 'failed']),
  runId: z.string().nullable(),
  tier: z.string().nullable(),
  artifacts: z.array(z.object({ source: z.string(), kind: z.string(), size: count, durationMs: count.nullable() })),
  targets: z.array(z.object({ url: z.string(), state: z.enum(['pending', 'complete', 'failed']) })),
  /** Size drops this run was flagged for when it was made. */
  drops: z.array(z.object({ source: z.string(), kind: z.string(), what: z.enum(['size', 'rows']), table: z.string().nullable(), before: count, after: count })),
  error: z.string().nullable(),
});

/** A restore drill: its whole report (verify.json), which outlives the run retention removes. */
export const drillEntry = drillReport.extend({ event: z.literal('drill') });

export const historyEntry = z.discriminatedUnion('event', [backupEntry, drillEntry]);
export type HistoryEntry = z.infer<typeof historyEntry>;
export type BackupEntry = z.infer<typeof backupEntry>;
export type DrillEntry = z.infer<typeof drillEntry>;

/** The history, oldest first; a damaged line is skipped, a missing file is an empty history. */
export async function readHistory(backupDir: string): Promise<HistoryEntry[]> {
  let text: string;
  try {
    // Never through a link someone planted at the name.
    const handle = await open(join(backupDir, HISTORY), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return [];
  }
  const entries: HistoryEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed = historyEntry.safeParse(JSON.parse(line));
      if (parsed.success) entries.push(parsed.data);
    } catch {
      // A line cut by a crash of an older writer, or edited by hand: the rest still counts.
    }
  }
  return entries;
}

/** Adds one line, keeping the newest `max`; the file is replaced atomically. The caller holds the volume lock. */
export async function appendHistory(backupDir: string, entry: HistoryEntry, max: number): Promise<void> {
  const entries = [...(await readHistory(backupDir)), historyEntry.parse(entry)].slice(-max);
  await writeFileAtomic(join(backupDir, HISTORY), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
}
