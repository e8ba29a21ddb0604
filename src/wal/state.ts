import { join } from 'node:path';
import ms from 'ms';
import prettyBytes from 'pretty-bytes';
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
  /** While streaming: how far behind the server's WAL it was when last measured. */
  lag: z.object({ bytes: z.number().int().nonnegative(), seconds: z.number().nonnegative(), at: z.iso.datetime() }).optional(),
});
export type ReceiverState = z.infer<typeof receiverState>;

export async function readReceiverState(backupDir: string): Promise<ReceiverState | undefined> {
  return readJsonFile(join(walDir(backupDir), RECEIVER), receiverState);
}

export async function writeReceiverState(backupDir: string, state: ReceiverState): Promise<void> {
  await writeFileAtomic(join(walDir(backupDir), RECEIVER), `${JSON.stringify(state)}\n`);
}

/** "1.2 MB and 40 seconds behind the server (measured at …)": the lag in words, for status, the health check and the page. */
export function lagWords(lag: NonNullable<ReceiverState['lag']>): string {
  const time = lag.seconds < 60 ? `${lag.seconds} second${lag.seconds === 1 ? '' : 's'}` : ms(lag.seconds * 1000, { long: true });
  return `${prettyBytes(lag.bytes)} and ${time} behind the server (measured ${lag.at})`;
}
