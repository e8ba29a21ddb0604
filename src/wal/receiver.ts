import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { Context } from '../context.ts';
import type { RunCipher } from '../crypto/age.ts';
import { describe } from '../errors.ts';
import { libpqEnv, query } from '../pg/psql.ts';
import { connectServer, type PgServer } from '../pg/server.ts';
import { ensureDir } from '../util/fs.ts';
import { STREAM_DIR, archiveCompleted, walDir } from './archive.ts';
import { replicationProblem } from './refusal.ts';
import { LagTracker } from './lag.ts';
import { streamPosition } from './slot.ts';
import { shipPartial, shipWal, type PartialShipped } from './ship.ts';
import { writeReceiverState, type ReceiverState } from './state.ts';

/** Waits between restarts: doubled after each quick failure, up to a minute. */
const BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000, 60_000];
/** A pg_receivewal that ran this long was healthy: the next failure starts the backoff over. */
const HEALTHY_MS = 60_000;
/** pg_receivewal counts as streaming once it has run this long. */
const STREAMING_AFTER_MS = 5000;
/** How often complete segments are moved into the compressed archive. */
const ARCHIVE_EVERY_MS = 10_000;

/**
 * WAL_ARCHIVE: pg_receivewal, kept running. It streams over a replication connection into a physical
 * slot (created if missing, so no segment is lost while the sidecar is down) in BACKUP_DIR/wal/stream/;
 * complete segments are compressed into wal/<timeline>/ as they come, and shipped to every remote target. When the connection drops it is
 * started again, after a growing pause, each failure logged in one line saying what the server lacks.
 */
export class WalReceiver {
  private readonly ctx: Context;
  private stopping = false;
  private child: ResultPromise | undefined;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private archiving: Promise<void> = Promise.resolve();
  private readonly wake = new AbortController();

  constructor(ctx: Context) {
    this.ctx = ctx;
  }

  start(): void {
    this.loop = this.run();
    this.timer = setInterval(() => this.archive(), ARCHIVE_EVERY_MS);
    if (this.ctx.hasRemoteTargets) this.partialTimer = setInterval(() => this.shipPartial(), this.ctx.config.wal.partialIntervalMs);
  }

  private partialTimer: NodeJS.Timeout | undefined;
  private partial: PartialShipped | undefined;
  /** The state last recorded, and the server pg_receivewal streams from (for the lag). */
  private state: ReceiverState | undefined;
  private server: PgServer | undefined;
  private readonly lag = new LagTracker();

  /** WAL_PARTIAL_INTERVAL: the segment being written, to every remote target; in turn with the archiving. */
  private shipPartial(): void {
    const { config, log } = this.ctx;
    this.archiving = this.archiving
      .then(async () => {
        this.partial = await shipPartial(config.backupDir, await this.ctx.targets(), await this.cipher(), config.signing, this.partial, log);
      })
      .catch((error: unknown) => log.warn({ err: describe(error) }, 'cannot ship the segment being written; the next round tries again'));
  }

  /** Stops pg_receivewal (it flushes what it has), then archives what is complete. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.abort();
    clearInterval(this.timer);
    clearInterval(this.partialTimer);
    this.child?.kill('SIGINT');
    await this.loop;
    this.archive();
    await this.archiving;
    await this.record({ streaming: false, since: this.ctx.now().toISOString(), error: 'the daemon stopped' });
  }

  private cipherPromise: Promise<RunCipher | undefined> | undefined;

  /** With ENCRYPTION_*: WAL is encrypted like artifacts (age), in the volume and offsite. */
  private cipher(): Promise<RunCipher | undefined> {
    const encryption = this.ctx.config.encryption;
    this.cipherPromise ??= encryption === undefined ? Promise.resolve(undefined) : import('../crypto/age.ts').then(({ RunCipher }) => RunCipher.create(encryption));
    return this.cipherPromise;
  }

  /** What the health check reads; a failure to write it is logged, never fatal. */
  private async record(state: ReceiverState): Promise<void> {
    this.state = state;
    await writeReceiverState(this.ctx.config.backupDir, state).catch((error: unknown) => this.ctx.log.warn({ err: describe(error) }, 'cannot record the WAL streaming state'));
  }

  /** Archives what is complete, then ships it to every remote target; one round at a time. */
  private archive(): void {
    const { config, log } = this.ctx;
    this.archiving = this.archiving
      .then(async () => archiveCompleted(config.backupDir, await this.cipher(), config.signing))
      .then(
        (names) => {
          if (names.length > 0) log.info({ segments: names.length, last: names.at(-1) }, 'WAL archived');
        },
        (error: unknown) => log.error({ err: describe(error) }, 'cannot archive WAL; it stays in wal/stream/ until it can'),
      )
      .then(async () => shipWal(config.backupDir, await this.ctx.targets(), log))
      .catch((error: unknown) => log.error({ err: describe(error) }, 'cannot ship WAL to the remote targets; the next round tries again'))
      .then(async () => this.measureLag())
      .catch((error: unknown) => log.warn({ err: describe(error) }, 'cannot measure how far WAL streaming is behind the server; the next round tries again'));
  }

  /** While streaming: how far pg_receivewal is behind the server's WAL, recorded for status, metrics and the health check. */
  private async measureLag(): Promise<void> {
    const server = this.server;
    if (server === undefined || this.state?.streaming !== true) return;
    const at = this.ctx.now();
    const position = await streamPosition(server, this.ctx.postgres().maintenanceDb, this.ctx.config.wal.slot);
    // Streaming may have stopped meanwhile: the state that says so stands.
    if (position === undefined || this.state?.streaming !== true || this.server !== server) return;
    const lag = this.lag.observe(at.getTime(), position.server, position.written);
    await this.record({ ...this.state, lag: { ...lag, at: at.toISOString() } });
  }

  private async run(): Promise<void> {
    const { config, log } = this.ctx;
    const pg = this.ctx.postgres();
    const dir = join(walDir(config.backupDir), STREAM_DIR);
    let failures = 0;
    let warned = false;
    // Down since the first failure after streaming last held (STREAMING_AFTER_MS); the health check measures from it.
    let downSince: Date | undefined = this.ctx.now();
    while (!this.stopping) {
      const began = Date.now();
      let why: string;
      let held: NodeJS.Timeout | undefined;
      try {
        await ensureDir(dir);
        const server = await connectServer(pg, pg.all ? pg.maintenanceDb : pg.databases[0]!);
        this.server = server;
        this.lag.reset();
        if (!warned) warned = await this.warnUnlimitedSlot(server, pg.maintenanceDb);
        await this.tool(server, ['--create-slot', '--if-not-exists', `--slot=${config.wal.slot}`]);
        log.info({ slot: config.wal.slot, dir }, 'streaming WAL');
        held = setTimeout(() => {
          downSince = undefined;
          void this.record({ streaming: true, since: this.ctx.now().toISOString(), error: null });
        }, STREAMING_AFTER_MS);
        // A status every second: the server's view of what it has written is what the lag is measured against.
        why = await this.tool(server, ['--directory', dir, `--slot=${config.wal.slot}`, '--no-loop', '--status-interval=1', ...(config.wal.synchronous ? ['--synchronous'] : [])]);
      } catch (error) {
        why = describe(error);
      }
      clearTimeout(held);
      this.server = undefined;
      if (this.stopping) break;
      downSince ??= this.ctx.now();
      await this.record({ streaming: false, since: downSince.toISOString(), error: why });
      failures = Date.now() - began > HEALTHY_MS ? 1 : failures + 1;
      const pause = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length) - 1]!;
      log.error({ err: why, retryInMs: pause }, 'WAL streaming stopped; starting it again');
      await sleep(pause, undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
  }

  /** Runs pg_receivewal with `args`; resolves with why it ended (a clean stop resolves too), throws nothing. */
  private async tool(server: PgServer, args: string[]): Promise<string> {
    const child = execa(join(server.client.binDir, 'pg_receivewal'), ['--no-password', ...args], { env: libpqEnv(server.conn, this.ctx.postgres().maintenanceDb), reject: false, all: true });
    this.child = child;
    const result = await child;
    this.child = undefined;
    if (result.exitCode === 0 || this.stopping) return 'pg_receivewal ended';
    if ((result as { code?: string }).code === 'ENOENT') throw new Error(`pg_receivewal is not installed in ${server.client.binDir}`);
    throw new Error(`pg_receivewal: ${replicationProblem(result.stderr, server.conn.user)}`);
  }

  /** A slot keeps WAL on the server until the sidecar has it: without max_slot_wal_keep_size, without limit. */
  private async warnUnlimitedSlot(server: PgServer, database: string): Promise<boolean> {
    const [[limit = ''] = []] = await query(server.client, server.conn, database, "SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size';");
    if (limit === '-1') {
      this.ctx.log.warn(
        { slot: this.ctx.config.wal.slot },
        "the server's max_slot_wal_keep_size is unlimited: while the sidecar is down, the replication slot makes the server keep every WAL segment, which can fill its disk; set max_slot_wal_keep_size (such as 10GB) on the server",
      );
    }
    return true;
  }
}
