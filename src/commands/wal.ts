import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { connectServer } from '../pg/server.ts';
import { walSegmentSize } from '../health/health.ts';
import { listRuns } from '../volume/runs.ts';
import { walSummary } from '../wal/archive.ts';
import { dropSlot, slotState } from '../wal/slot.ts';

/**
 * `wal`: the replication slot as the server sees it (active, how much WAL it holds there) and the WAL
 * kept in the volume. `wal --drop-slot`: removes the slot once WAL_ARCHIVE is off, so the server stops
 * keeping WAL for a sidecar that no longer reads it.
 */
export async function walCommand(ctx: Context, drop: boolean): Promise<number> {
  const { config } = ctx;
  const pg = ctx.postgres();
  if (drop && config.wal.enabled) throw new UsageError('WAL_ARCHIVE is true: the daemon would create the slot again; set WAL_ARCHIVE=false (and restart the daemon) before --drop-slot');
  const server = await connectServer(pg, pg.maintenanceDb);
  const slot = await slotState(server, pg.maintenanceDb, config.wal.slot);
  const out: string[] = [];
  if (drop) {
    if (slot === undefined) out.push(`no slot ${config.wal.slot} on ${pg.host}:${pg.port}: nothing to drop`);
    else {
      if (slot.active) throw new UsageError(`slot ${config.wal.slot} is in use (a daemon with WAL_ARCHIVE=true is streaming): stop it first`);
      await dropSlot(server, pg.maintenanceDb, config.wal.slot);
      out.push(`dropped slot ${config.wal.slot} on ${pg.host}:${pg.port}: the server no longer keeps WAL for it (it held ${prettyBytes(slot.retainedBytes)})`);
    }
  } else {
    out.push(
      slot === undefined
        ? `slot ${config.wal.slot}: none on ${pg.host}:${pg.port}${config.wal.enabled ? ' (the daemon creates it when it starts)' : ''}`
        : `slot ${config.wal.slot}: ${slot.active ? 'active' : 'INACTIVE (no sidecar is streaming)'}, the server keeps ${prettyBytes(slot.retainedBytes)} of WAL for it${slot.walStatus === 'lost' ? ': LOST, the server removed WAL the sidecar had not received (a gap)' : ''}`,
    );
    const wal = await walSummary(config.backupDir, walSegmentSize(await listRuns(config.backupDir)));
    out.push(wal.newest === undefined ? 'volume: no WAL yet' : `volume: ${wal.segments} segment(s), newest ${wal.newest}${wal.newestAt === undefined ? '' : `, written ${ms(Math.max(0, ctx.now().getTime() - wal.newestAt.getTime()))} ago`}${wal.gaps.length > 0 ? `; GAP: ${wal.gaps.join(', ')} missing` : ''}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
