import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../util/fs.ts';

/** `.status.json` in the volume: how the last backup job went, for healthcheck and status. */
const STATUS = '.status.json';

export const jobOutcome = z.object({
  ok: z.boolean(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  runId: z.string().nullable(),
  tier: z.string().nullable(),
  bytes: z.number(),
  /** Offsite state of the run: complete, failed, or off (no S3). */
  offsite: z.string(),
  error: z.string().nullable(),
});
export type JobOutcome = z.infer<typeof jobOutcome>;

const statusFile = z.object({ last: jobOutcome, lastFailure: jobOutcome.nullable() });
export type StatusFile = z.infer<typeof statusFile>;

export async function readStatus(backupDir: string): Promise<StatusFile | undefined> {
  return readJsonFile(join(backupDir, STATUS), statusFile);
}

export async function recordOutcome(backupDir: string, outcome: JobOutcome): Promise<void> {
  const previous = await readStatus(backupDir);
  const next: StatusFile = { last: outcome, lastFailure: outcome.ok ? (previous?.lastFailure ?? null) : outcome };
  await writeFileAtomic(join(backupDir, STATUS), `${JSON.stringify(next, null, 2)}\n`);
}

/**
 * `.daemon.json` in the volume: when the daemon last started. A fresh install has no run until its first
 * scheduled one; the health check counts it as healthy until that is overdue.
 */
const DAEMON = '.daemon.json';
const daemonFile = z.object({ startedAt: z.iso.datetime() });

export async function recordDaemonStart(backupDir: string, at: Date): Promise<void> {
  await mkdir(backupDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(backupDir, DAEMON), `${JSON.stringify({ startedAt: at.toISOString() })}\n`);
}

export async function readDaemonStart(backupDir: string): Promise<Date | undefined> {
  const file = await readJsonFile(join(backupDir, DAEMON), daemonFile);
  return file === undefined ? undefined : new Date(file.startedAt);
}
