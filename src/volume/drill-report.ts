import { join } from 'node:path';
import { z } from 'zod';
import { describe } from '../errors.ts';
import { readJsonFile } from '../util/fs.ts';

/** `verify.json`, next to a run's manifest: the last restore drill of that run. */
export const VERIFY_FILE = 'verify.json';

export const drillReport = z.object({
  runId: z.string(),
  ok: z.boolean(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  durationMs: z.number(),
  checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string(), durationMs: z.number() })),
});
export type DrillReport = z.infer<typeof drillReport>;
export type DrillCheck = DrillReport['checks'][number];

/** The run's drill report; undefined when it was never drilled (or the file is damaged). */
export async function readDrillReport(runDir: string): Promise<DrillReport | undefined> {
  return readJsonFile(join(runDir, VERIFY_FILE), drillReport);
}

/** One line for people: "passed at … (5 checks, 0.6 s)" or "FAILED at …: the failing checks". */
export function drillSummary(report: DrillReport): string {
  const seconds = (report.durationMs / 1000).toFixed(1);
  if (report.ok) return `passed at ${report.finishedAt} on run ${report.runId} (${report.checks.length} checks, ${seconds} s)`;
  const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail.split('\n')[0]}`);
  return `FAILED at ${report.finishedAt} on run ${report.runId}: ${failed.join('; ')}`;
}

/** Runs one check of a drill, timing it: a failure is a failed check, not an error. */
export async function timed(check: string, work: () => Promise<string>): Promise<DrillCheck> {
  const started = Date.now();
  try {
    return { check, ok: true, detail: await work(), durationMs: Date.now() - started };
  } catch (error) {
    return { check, ok: false, detail: describe(error), durationMs: Date.now() - started };
  }
}

/** A check that failed before it could start. */
export function failedCheck(check: string, error: unknown): DrillCheck {
  return { check, ok: false, detail: describe(error), durationMs: 0 };
}
