import type { LoadResult } from '../config/load.ts';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { TIERS, type Tier } from '../naming.ts';

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** The value's name in help (string options). */
  value?: string;
  help: string;
}

/** One command, declared once: help, options and handler. */
export interface CommandSpec {
  name: string;
  args: string;
  summary: string;
  options: Record<string, OptionSpec>;
  /** How many positional arguments it takes, and what to say otherwise. */
  positionals: { max: number; min?: number; misuse: string };
  example: string;
  /** backup and daemon need POSTGRES_DB or MEDIA_PATHS. */
  needSources?: boolean;
  /** print-config: runs on the loaded configuration even when it has problems. */
  raw?: (loaded: LoadResult) => Promise<number> | number;
  run?: (parsed: Parsed, ctx: Context) => Promise<number>;
}

function positiveInt(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number of at least 1, got "${String(value)}"`);
  return n;
}

const trustUnsigned: OptionSpec = { type: 'boolean', help: 'use a run without a signature although BACKUP_SIGNING_KEY is set (an older run); a wrong signature is always refused' };

export const COMMANDS: CommandSpec[] = [
  {
    name: 'backup',
    args: '[--tier T]',
    summary: 'one backup run of every configured database and media folder, streamed to every remote target too; then earlier runs missing there are uploaded, and every place is pruned',
    options: { tier: { type: 'string', value: 'T', help: `force the tier: ${TIERS.join(', ')} (default: first of year, month or ISO week, else daily)` } },
    positionals: { max: 0, misuse: 'backup takes no arguments' },
    example: 'backup-sidecar backup',
    needSources: true,
    run: async ({ values }, ctx) => {
      const tier = values.tier as string | undefined;
      if (tier !== undefined && !(TIERS as readonly string[]).includes(tier)) throw new UsageError(`--tier expects one of ${TIERS.join(', ')}, got "${tier}"`);
      const { backupCommand } = await import('./backup.ts');
      return backupCommand(ctx, tier as Tier | undefined);
    },
  },
  {
    name: 'basebackup',
    args: '',
    summary: 'one base backup now (pg_basebackup, with WAL_ARCHIVE): a run of its own, the start of point-in-time recovery (restore --pitr)',
    options: {},
    positionals: { max: 0, misuse: 'basebackup takes no arguments' },
    example: 'backup-sidecar basebackup',
    run: async (_parsed, ctx) => (await import('./backup.ts')).backupCommand(ctx, undefined, 'basebackup'),
  },
  {
    name: 'restore',
    args: '<ref> [options]',
    summary: 'restore a run or one file: signature and checksums first, a confirmation, a safety net, then a check that it worked',
    options: {
      yes: { type: 'boolean', short: 'y', help: 'do not ask (needed without a terminal)' },
      'target-db': { type: 'string', value: 'NAME', help: 'restore the one dump into NAME instead (created if missing)' },
      'target-dir': { type: 'string', value: 'PATH', help: 'restore the one tarball into PATH instead' },
      'no-safety-backup': { type: 'boolean', help: 'keep nothing of what is replaced (RESTORE_SAFETY=none)' },
      'no-owner': { type: 'boolean', help: 'do not restore ownership and privileges (roles missing on this server)' },
      jobs: { type: 'string', short: 'j', value: 'N', help: 'pg_restore parallel jobs (default: number of CPUs)' },
      'trust-unsigned': trustUnsigned,
      'allow-missing-tables': { type: 'boolean', help: 'restore although the database has tables the dump lacks: they are dropped, the safety backup keeps them' },
      rollback: { type: 'boolean', help: 'instead of <ref>, a database name: swap back the copy RESTORE_SAFETY=keep kept' },
      pitr: { type: 'string', value: 'TARGET', help: 'point-in-time recovery (WAL_ARCHIVE) instead of <ref>: latest, a time (2026-11-04T10:41:07Z) or a WAL position, into --pgdata (from the volume, else the remote targets)' },
      pgdata: { type: 'string', value: 'DIR', help: 'with --pitr: an empty folder the base backup and its WAL are restored into (a new volume for the postgres container)' },
      'pgdata-owner': { type: 'string', value: 'UID:GID', help: 'with --pitr, run as root: who gets the files (default 999:999, the postgres image)' },
      'dry-run': { type: 'boolean', short: 'n', help: 'with --pitr: print the base backup and the WAL range chosen, where they come from, and whether it is complete; write nothing' },
    },
    positionals: { max: 1, misuse: 'restore takes one file, run id or "latest" (or, with --rollback, one database name; with --pitr, none)' },
    example: 'backup-sidecar restore latest --yes',
    run: async ({ values, positionals }, ctx) => {
      if (values.pitr !== undefined) {
        if (positionals.length > 0) throw new UsageError('restore --pitr takes no <ref>: the base backup is chosen by the target');
        const owner = /^(\d+):(\d+)$/.exec((values['pgdata-owner'] as string | undefined) ?? '999:999');
        if (owner === null) throw new UsageError(`--pgdata-owner expects UID:GID such as 999:999, got "${String(values['pgdata-owner'])}"`);
        const { pitrCommand } = await import('./restore.ts');
        return pitrCommand(ctx, {
          target: values.pitr as string,
          pgdata: values.pgdata as string | undefined,
          owner: { uid: Number(owner[1]), gid: Number(owner[2]) },
          dryRun: values['dry-run'] === true,
          trustUnsigned: values['trust-unsigned'] === true,
        });
      }
      if (positionals.length !== 1) throw new UsageError('restore takes one file, run id or "latest" (or, with --rollback, one database name; with --pitr, none) (example: backup-sidecar restore latest --yes)');
      const { restoreCommand, rollbackCommand } = await import('./restore.ts');
      if (values.rollback === true) return rollbackCommand(ctx, positionals[0]!, values.yes === true);
      const targetDir = values['target-dir'] as string | undefined;
      if (targetDir !== undefined && !targetDir.startsWith('/')) throw new UsageError(`--target-dir must be an absolute path, got "${targetDir}"`);
      return restoreCommand(ctx, {
          ref: positionals[0]!,
          yes: values.yes === true,
          targetDb: values['target-db'] as string | undefined,
          targetDir,
          safety: values['no-safety-backup'] === true ? 'none' : ctx.config.restoreSafety,
          noOwner: values['no-owner'] === true,
          jobs: positiveInt(values.jobs, '--jobs'),
          trustUnsigned: values['trust-unsigned'] === true,
          allowMissingTables: values['allow-missing-tables'] === true,
      });
    },
  },
  {
    name: 'list',
    args: '[--remote] [--json]',
    summary: 'the runs in the volume (or, with --remote, in every remote target), newest first',
    options: { remote: { type: 'boolean', help: 'list the remote targets instead' }, json: { type: 'boolean', help: 'JSON for scripts' } },
    positionals: { max: 0, misuse: 'list takes no arguments' },
    example: 'backup-sidecar list --json',
    run: async ({ values }, ctx) => {
      const { listCommand, listRemoteCommand } = await import('./list.ts');
      return values.remote === true ? listRemoteCommand(ctx, values.json === true) : listCommand(ctx, values.json === true);
    },
  },
  {
    name: 'verify',
    args: '[ref] [--restore]',
    summary: 'signature and sha256 of each file against its manifest, then a full read (default: latest); with --restore, a restore drill into a scratch database and a temporary folder, touching nothing real (verify.json)',
    options: { restore: { type: 'boolean', help: 'a restore drill' }, 'trust-unsigned': trustUnsigned },
    positionals: { max: 1, misuse: 'verify takes at most one file, run id or "latest"' },
    example: 'backup-sidecar verify --restore latest',
    run: async ({ values, positionals }, ctx) => {
      const ref = positionals[0] ?? 'latest';
      if (values.restore === true) return (await import('./drill.ts')).drillCommand(ctx, ref, values['trust-unsigned'] === true);
      return (await import('./verify.ts')).verifyCommand(ctx, ref, values['trust-unsigned'] === true);
    },
  },
  {
    name: 'prune',
    args: '[--dry-run]',
    summary: 'apply retention to the volume and every remote target; prints every run with its reason',
    options: { 'dry-run': { type: 'boolean', short: 'n', help: 'only say what would be removed' } },
    positionals: { max: 0, misuse: 'prune takes no arguments' },
    example: 'backup-sidecar prune --dry-run',
    run: async ({ values }, ctx) => (await import('./prune.ts')).pruneCommand(ctx, values['dry-run'] === true),
  },
  {
    name: 'lifecycle',
    args: '[--apply]',
    summary: 'print (or put on the bucket) the S3 lifecycle rules matching retention',
    options: { apply: { type: 'boolean', help: "replace this tool's rules on the bucket, keeping all others" } },
    positionals: { max: 0, misuse: 'lifecycle takes no arguments' },
    example: 'backup-sidecar lifecycle --apply',
    run: async ({ values }, ctx) => (await import('./lifecycle.ts')).lifecycleCommand(ctx, values.apply === true),
  },
  {
    name: 'daemon',
    args: '',
    summary: 'the long-running process: backups on SCHEDULE, drills on VERIFY_SCHEDULE, /healthz and /metrics on HEALTHCHECK_PORT',
    options: {},
    positionals: { max: 0, misuse: 'daemon takes no arguments' },
    example: 'backup-sidecar daemon',
    needSources: true,
    run: async (_parsed, ctx) => (await import('../daemon/daemon.ts')).runDaemon(ctx),
  },
  {
    name: 'healthcheck',
    args: '',
    summary: 'exit 0 when the newest successful run is recent and the last did not fail (and it is offsite), else 1; the reason on one line',
    options: {},
    positionals: { max: 0, misuse: 'healthcheck takes no arguments' },
    example: 'backup-sidecar healthcheck',
    run: async (_parsed, ctx) => (await import('./health.ts')).healthcheckCommand(ctx),
  },
  {
    name: 'status',
    args: '',
    summary: 'health, runs per tier, sizes, free space, offsite state per target, databases kept by restores, last error',
    options: {},
    positionals: { max: 0, misuse: 'status takes no arguments' },
    example: 'backup-sidecar status',
    run: async (_parsed, ctx) => (await import('./health.ts')).statusCommand(ctx),
  },
  {
    name: 'wal',
    args: '[--drop-slot]',
    summary: 'the WAL archive (WAL_ARCHIVE): the replication slot on the server and how much WAL it holds there, the WAL in the volume; --drop-slot removes the slot once WAL_ARCHIVE is off',
    options: { 'drop-slot': { type: 'boolean', help: 'remove the replication slot (WAL_ARCHIVE must be false, and no daemon streaming)' } },
    positionals: { max: 0, misuse: 'wal takes no arguments' },
    example: 'backup-sidecar wal --drop-slot',
    run: async ({ values }, ctx) => (await import('./wal.ts')).walCommand(ctx, values['drop-slot'] === true),
  },
  {
    name: 'ack',
    args: '<run-id>',
    summary: 'acknowledge the size drop a run was flagged for (SIZE_DROP_WARN): the run before it, kept until then, goes back to normal retention',
    options: {},
    positionals: { max: 1, min: 1, misuse: 'ack takes the id of the flagged run (status names it)' },
    example: 'backup-sidecar ack 20261204T020000Z',
    run: async ({ positionals }, ctx) => (await import('./ack.ts')).ackCommand(ctx, positionals[0]!),
  },
  {
    name: 'print-config',
    args: '',
    summary: 'the effective configuration, secrets masked, and what is wrong with it',
    options: {},
    positionals: { max: 0, misuse: 'print-config takes no arguments' },
    example: 'backup-sidecar print-config',
    needSources: true,
    raw: async (loaded) => (await import('./print-config.ts')).printConfigCommand(loaded),
  },
];

/** The help of one command: usage, what it does, its options, an example. */
export function commandHelp(spec: CommandSpec): string {
  const options = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short === undefined ? '' : `-${o.short}, `}--${name}${o.value === undefined ? '' : ` ${o.value}`}`;
    return `  ${flag.padEnd(26)} ${o.help}`;
  });
  return [
    `Usage: backup-sidecar ${spec.name}${spec.args === '' ? '' : ` ${spec.args}`}`,
    '',
    spec.summary,
    ...(options.length > 0 ? ['', 'Options:', ...options] : []),
    '',
    `Example: ${spec.example}`,
  ].join('\n');
}
