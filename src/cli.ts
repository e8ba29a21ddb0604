#!/usr/bin/env -S node --max-semi-space-size=1
// The flag keeps memory flat: streaming gigabytes allocates many short-lived buffers, and V8's default
// young generation lets their backing stores pile up, so peak RSS grew with the database (169 MiB
// instead of 101 MiB at 1 GiB, same speed; see `npm run bench`).
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { backupCommand } from './commands/backup.ts';
import { listCommand, listRemoteCommand } from './commands/list.ts';
import { pruneCommand } from './commands/prune.ts';
import { printConfigCommand } from './commands/print-config.ts';
import { restoreCommand, rollbackCommand } from './commands/restore.ts';
import { verifyCommand } from './commands/verify.ts';
import { loadConfig } from './config/load.ts';
import { removeSecrets } from './config/secrets.ts';
import { RunError, UsageError } from './errors.ts';
import { createLogger, type Logger } from './log.ts';
import { abortOnSignal, installSignalHandlers } from './signals.ts';
import { TIERS, type Tier } from './naming.ts';
import { VERSION } from './version.ts';

const HELP = `backup-sidecar ${VERSION}: backs up PostgreSQL and media folders into a volume, and restores them.

Usage: backup-sidecar <command> [options]

Commands:
  backup [--tier T]           one backup run of every configured database and media folder, streamed
                              to S3 too when S3_BUCKET is set; then earlier runs missing in S3 are
                              uploaded and both places pruned. --tier daily|weekly|monthly|yearly forces
                              the tier (default: first of year, month or ISO week, else daily)
  restore <ref> [options]     restore a run or one file (checksum, safety backup, confirmation, check)
      --yes                   do not ask (needed without a terminal)
      --target-db NAME        restore the one dump into NAME instead (created if missing)
      --target-dir PATH       restore the one tarball into PATH instead
      --no-safety-backup      keep nothing of what is replaced (RESTORE_SAFETY=none; default dump:
                              a dump into pre-restore/ first; keep: the database renamed aside)
      --no-owner              do not restore ownership and privileges (roles missing on this server)
      --jobs N                pg_restore parallel jobs (default: number of CPUs)
      --trust-unsigned        use a run without a signature although BACKUP_SIGNING_KEY is set (an
                              older run); a wrong signature is always refused
      --rollback DB           (instead of <ref>) swap back the copy of database DB that
                              RESTORE_SAFETY=keep kept; what it replaces is kept in turn
      --allow-missing-tables  restore although the database has tables the dump lacks (a dump made
                              with --schema, --exclude-table...): they are dropped, the safety backup
                              keeps them
  list [--remote] [--json]    the runs in the volume (or, with --remote, in S3), newest first
  daemon                      the long-running process: backups on SCHEDULE, /healthz and /metrics
  healthcheck                 exit 0 when the newest successful run is recent and the last did not fail
  status                      health, runs per tier, sizes, free space, offsite state, last error
  prune [--dry-run]           apply retention to the volume and S3; prints every run with its reason
  lifecycle [--apply]         print (or put on the bucket) the S3 lifecycle rules matching retention
  verify [ref]                sha256 of each file against its manifest, then a full read (default: latest);
                              --trust-unsigned as for restore
  verify --restore [ref]      a restore drill: each dump restored into a scratch database and its row
                              counts (and VERIFY_SQL) checked, each tarball unpacked into a temporary
                              folder and measured; nothing real is touched; the result goes to verify.json
  print-config                the effective configuration, secrets masked, and what is wrong with it

<ref> is an absolute path, a path relative to BACKUP_DIR, a run id, a file name (newest run that has
it), "latest", or s3://bucket/<prefix>/<tier>/<run-id>[/<file>]. A run only in S3 is downloaded into
the volume first, each file checked against its manifest. Configuration comes from environment variables: see README.md.

Exit codes: 0 success, 1 the run failed, 2 usage or configuration error.`;

function parse(args: string[], options: ParseArgsOptionsConfig = {}) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]} (see backup-sidecar --help)`);
  }
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a whole number of at least 1, got "${value}"`);
  return n;
}

async function run(argv: string[], setLogger: (log: Logger) => void): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const known = ['backup', 'restore', 'list', 'verify', 'prune', 'lifecycle', 'daemon', 'healthcheck', 'status', 'print-config'];
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}"; commands: ${known.join(', ')} (see --help)`);

  const loaded = loadConfig(process.env, { needSources: ['backup', 'daemon', 'print-config'].includes(command) });
  if (command === 'print-config') {
    parse(rest);
    return printConfigCommand(loaded);
  }
  if (loaded.config === undefined) throw new UsageError(loaded.problems.join('\n'));
  const config = loaded.config;
  removeSecrets(process.env);
  const log = createLogger(config.logLevel, config.logFormat);
  setLogger(log);
  // The daemon handles signals itself (graceful stop); every other command fails cleanly (exit 1).
  const signal = command === 'daemon' ? undefined : abortOnSignal((line) => log.warn(line));

  switch (command) {
    case 'backup': {
      const { values, positionals } = parse(rest, { tier: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError('backup takes no arguments (see --help)');
      const tier = values.tier as string | undefined;
      if (tier !== undefined && !(TIERS as readonly string[]).includes(tier)) throw new UsageError(`--tier expects one of ${TIERS.join(', ')}, got "${tier}"`);
      return backupCommand(config, log, { tier: tier as Tier | undefined, signal });
    }
    case 'daemon': {
      const { positionals } = parse(rest);
      if (positionals.length > 0) throw new UsageError('daemon takes no arguments (see --help)');
      const { runDaemon } = await import('./daemon/daemon.ts');
      return runDaemon(config, log);
    }
    case 'healthcheck':
    case 'status': {
      const { positionals } = parse(rest);
      if (positionals.length > 0) throw new UsageError(`${command} takes no arguments (see --help)`);
      const { healthcheckCommand, statusCommand } = await import('./commands/health.ts');
      return command === 'healthcheck' ? healthcheckCommand(config) : statusCommand(config);
    }
    case 'prune': {
      const { values, positionals } = parse(rest, { 'dry-run': { type: 'boolean', short: 'n' } });
      if (positionals.length > 0) throw new UsageError('prune takes no arguments (see --help)');
      return pruneCommand(config, log, values['dry-run'] === true, signal);
    }
    case 'lifecycle': {
      const { values, positionals } = parse(rest, { apply: { type: 'boolean' } });
      if (positionals.length > 0) throw new UsageError('lifecycle takes no arguments (see --help)');
      // Loaded on demand: it needs the AWS SDK, which other commands without S3 never load.
      const { lifecycleCommand } = await import('./commands/lifecycle.ts');
      return lifecycleCommand(config, values.apply === true);
    }
    case 'restore': {
      const { values, positionals } = parse(rest, {
        yes: { type: 'boolean', short: 'y' },
        'target-db': { type: 'string' },
        'target-dir': { type: 'string' },
        'no-safety-backup': { type: 'boolean' },
        'no-owner': { type: 'boolean' },
        jobs: { type: 'string', short: 'j' },
        'trust-unsigned': { type: 'boolean' },
        'allow-missing-tables': { type: 'boolean' },
        rollback: { type: 'boolean' },
      });
      if (values.rollback === true) {
        if (positionals.length !== 1) throw new UsageError('restore --rollback takes one database name (example: backup-sidecar restore --rollback app)');
        return rollbackCommand(config, log, positionals[0]!, values.yes === true, signal);
      }
      if (positionals.length !== 1) throw new UsageError('restore takes one file, run id or "latest" (example: backup-sidecar restore latest)');
      const targetDir = values['target-dir'] as string | undefined;
      if (targetDir !== undefined && !targetDir.startsWith('/')) throw new UsageError(`--target-dir must be an absolute path, got "${targetDir}"`);
      return restoreCommand(config, log, {
        ref: positionals[0]!,
        yes: values.yes === true,
        targetDb: values['target-db'] as string | undefined,
        targetDir,
        safety: values['no-safety-backup'] === true ? 'none' : config.restoreSafety,
        noOwner: values['no-owner'] === true,
        jobs: positiveInt(values.jobs as string | undefined, '--jobs'),
        trustUnsigned: values['trust-unsigned'] === true,
        allowMissingTables: values['allow-missing-tables'] === true,
      }, signal);
    }
    case 'list': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' }, remote: { type: 'boolean' } });
      if (positionals.length > 0) throw new UsageError('list takes no arguments (see --help)');
      return values.remote === true ? listRemoteCommand(config, log, values.json === true) : listCommand(config, values.json === true);
    }
    case 'verify': {
      const { values, positionals } = parse(rest, { restore: { type: 'boolean' }, 'trust-unsigned': { type: 'boolean' } });
      if (positionals.length > 1) throw new UsageError('verify takes at most one file, run id or "latest"');
      const trustUnsigned = values['trust-unsigned'] === true;
      if (values.restore === true) {
        const { drillCommand } = await import('./commands/drill.ts');
        return drillCommand(config, log, positionals[0] ?? 'latest', trustUnsigned, signal);
      }
      return verifyCommand(config, log, positionals[0] ?? 'latest', trustUnsigned, signal);
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** The only place that turns errors into exit codes: 2 usage or config, 1 a failed run. */
async function main(): Promise<void> {
  installSignalHandlers();
  let log: Logger | undefined;
  try {
    process.exitCode = await run(process.argv.slice(2), (l) => (log = l));
  } catch (error) {
    const usage = error instanceof UsageError;
    const expected = usage || error instanceof RunError;
    const message = error instanceof Error ? error.message : String(error);
    log?.error({ err: expected ? message : error }, usage ? 'usage error' : 'failed');
    for (const line of message.split('\n')) process.stderr.write(`backup-sidecar: ${line}\n`);
    if (!expected && error instanceof Error && error.stack !== undefined && log === undefined) process.stderr.write(`${error.stack}\n`);
    process.exitCode = usage ? 2 : 1;
  }
  // The work is done: a socket left open by a stalled store, or a child that ignored its signal, must not
  // keep the process alive. Output still queued for a slow reader (a pipe) is flushed first.
  for (const stream of [process.stdout, process.stderr]) await new Promise<void>((resolve) => stream.write('', () => resolve()));
  process.exit();
}

await main();
