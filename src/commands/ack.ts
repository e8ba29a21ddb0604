import { join } from 'node:path';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { ACK_FILE, parseRunId } from '../naming.ts';
import { dropNote, dropWords } from '../retention/drops.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { listRuns, volumeDrops } from '../volume/runs.ts';

/**
 * `ack <run-id>`: a person says the size drop of a flagged run is expected. The acknowledgement is a file
 * in that run's folder (ack.json); from then on retention treats the run before it like any other.
 */
export async function ackCommand(ctx: Context, runId: string): Promise<number> {
  const { config, log, signal } = ctx;
  if (parseRunId(runId) === undefined) throw new UsageError(`"${runId.slice(0, 100)}" is not a run id (YYYYMMDDTHHMMSSZ[_label]); \`backup-sidecar status\` names the flagged runs`);
  const lines = await withVolumeLock(config.backupDir, log, async () => {
    const runs = await listRuns(config.backupDir, config.signing);
    const run = runs.find((r) => r.id === runId && r.manifest !== undefined);
    if (run === undefined) throw new UsageError(`no complete run ${runId} in ${config.backupDir}; \`backup-sidecar status\` names the flagged runs`);
    const drops = volumeDrops(runs, config.sizeDrop, ctx.notAfter());
    const mine = drops.filter((d) => d.runId === runId);
    if (run.acknowledged) return [`run ${runId}: its drop was already acknowledged`];
    if (mine.length === 0) {
      const flagged = [...new Set(drops.filter((d) => !d.acknowledged).map((d) => d.runId))];
      throw new UsageError(`run ${runId} has no size drop to acknowledge (SIZE_DROP_WARN ${config.sizeDrop.warn * 100}%); ${flagged.length === 0 ? 'no run is flagged' : `flagged: ${flagged.join(', ')}`}`);
    }
    const record = { acknowledgedAt: ctx.now().toISOString(), drops: mine.map((d) => ({ ...dropNote(d), previousRunId: d.previousRunId })) };
    await writeFileAtomic(join(run.dir, ACK_FILE), `${JSON.stringify(record, null, 2)}\n`);
    log.info({ run: runId }, 'size drop acknowledged');
    return [...mine.map((d) => `acknowledged: ${dropWords(d)} in run ${runId}`), `run ${[...new Set(mine.map((d) => d.previousRunId))].join(', ')} is no longer held: retention treats it like any other from the next prune`];
  }, { waitMs: config.lockWaitMs, signal });
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
