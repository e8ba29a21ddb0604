import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../util/fs.ts';
import { walDir } from './archive.ts';

/** wal/.receiver.json: whether the daemon's WAL streaming runs, since when, and why not; the health check reads it. */
const RECEIVER = '.receiver.json';

export const receiverState = z.object({
  streaming: z.boolean(),
  /** When streaming last started, or (not streaming) when it stopped. */
  since: z.iso.datetime(),
  error: z.string().nullable(),
});
export type ReceiverState = z.infer<typeof receiverState>;

export async function readReceiverState(backupDir: string): Promise<ReceiverState | undefined> {
  return readJsonFile(join(walDir(backupDir), RECEIVER), receiverState);
}

export async function writeReceiverState(backupDir: string, state: ReceiverState): Promise<void> {
  await writeFileAtomic(join(walDir(backupDir), RECEIVER), `${JSON.stringify(state)}\n`);
}
