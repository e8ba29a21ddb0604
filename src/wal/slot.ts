import type { Context } from '../context.ts';
import { query } from '../pg/psql.ts';
import { connectServer, type PgServer } from '../pg/server.ts';
import { parseLsn } from './lsn.ts';

/** The replication slot WAL streaming uses, as the server sees it. */
export interface SlotState {
  active: boolean;
  /** WAL the server keeps for the slot: how far the sidecar is behind the server's current position. */
  retainedBytes: number;
  /** reserved, extended, unreserved or lost (max_slot_wal_keep_size exceeded: WAL is gone, a gap). */
  walStatus: string;
}

/** The slot's state, or undefined when the server has no such slot. */
export async function slotState(server: PgServer, database: string, slot: string): Promise<SlotState | undefined> {
  const rows = await query(
    server.client,
    server.conn,
    database,
    "SELECT active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = :'slot';",
    { slot },
  );
  const [active, retained, walStatus] = rows[0] ?? [];
  return active === undefined ? undefined : { active: active === 't', retainedBytes: Number(retained), walStatus: walStatus ?? '' };
}

/** WAL_SLOT's state on the configured server (connecting for it). */
export async function askSlot(ctx: Context): Promise<SlotState | undefined> {
  const pg = ctx.postgres();
  return slotState(await connectServer(pg, pg.maintenanceDb), pg.maintenanceDb, ctx.config.wal.slot);
}

/** Drops the slot (the server stops keeping WAL for it). */
export async function dropSlot(server: PgServer, database: string, slot: string): Promise<void> {
  await query(server.client, server.conn, database, "SELECT pg_drop_replication_slot(:'slot');", { slot });
}

/**
 * Where the server's WAL ends, and how far the slot's receiver has written (pg_stat_replication's
 * write_lsn, else the slot's restart_lsn); undefined when the server has no such slot.
 */
export async function streamPosition(server: PgServer, database: string, slot: string): Promise<{ server: bigint; written: bigint } | undefined> {
  const rows = await query(
    server.client,
    server.conn,
    database,
    "SELECT pg_current_wal_lsn(), coalesce(r.write_lsn, s.restart_lsn) FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = :'slot';",
    { slot },
  );
  const current = parseLsn(rows[0]?.[0] ?? '');
  const written = parseLsn(rows[0]?.[1] ?? '');
  return current === undefined || written === undefined ? undefined : { server: current, written };
}
