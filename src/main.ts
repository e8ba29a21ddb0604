/** The CLI proper: parses arguments, builds the context and dispatches; the only place that maps errors to exit codes. */
import { parseArgs } from 'node:util';
import { COMMANDS, commandHelp, type CommandSpec } from './commands/table.ts';
import { closest } from './util/closest.ts';
import { createContext } from './context.ts';
import { peakRssMiB } from './util/memory.ts';
import { loadConfig } from './config/load.ts';
import { removeSecrets } from './config/secrets.ts';
import { RunError, UsageError } from './errors.ts';
import { createLogger, type Logger } from './log.ts';
import { abortOnSignal, installSignalHandlers } from './signals.ts';
import { VERSION } from './version.ts';

const HELP = `backup-sidecar ${VERSION}: backs up PostgreSQL and media folders into a volume, and restores them.

Usage: backup-sidecar <command> [options]        backup-sidecar <command> --help, or help <command>

Commands:
${COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(30)} ${c.summary}`).join('\n')}

<ref> is an absolute path, a path relative to BACKUP_DIR, a run id, a file name (newest run that has
it), "latest", or a remote target's URL (s3://bucket/<prefix>/<tier>/<run-id>[/<file>],
sftp://host:port/<path>/<tier>/<run-id>[/<file>]); a run only in a remote target is downloaded into the
volume first, each file checked against its manifest. Configuration comes from environment variables:
see README.md.

Exit codes: 0 success, 1 the run failed, 2 usage or configuration error.`;

function commandNamed(name: string): CommandSpec {
  const spec = COMMANDS.find((c) => c.name === name);
  if (spec !== undefined) return spec;
  const guess = closest(name, COMMANDS.map((c) => c.name));
  throw new UsageError(`unknown command "${name}"${guess === undefined ? '' : `; did you mean "${guess}"?`} (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see --help)`);
}

/** Parses a command's arguments as it declares them; a mistyped flag gets a suggestion. */
function parse(spec: CommandSpec, args: string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec.options, allowPositionals: true, strict: true });
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    const flag = /'(--?[^']+)'/.exec(message)?.[1];
    const guess = flag === undefined ? undefined : closest(flag.replace(/^-+/, ''), Object.keys(spec.options));
    throw new UsageError(`${message}${guess === undefined ? '' : `; did you mean --${guess}?`} (see backup-sidecar ${spec.name} --help)`);
  }
  const { min = 0, max, misuse } = spec.positionals;
  if (parsed.positionals.length < min || parsed.positionals.length > max) throw new UsageError(`${misuse} (example: ${spec.example})`);
  return parsed;
}

async function run(argv: string[], setLogger: (log: Logger) => void): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  // Help never needs a configuration.
  if (command === 'help') {
    process.stdout.write(`${rest[0] === undefined ? HELP : commandHelp(commandNamed(rest[0]))}\n`);
    return 0;
  }
  const spec = commandNamed(command);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${commandHelp(spec)}\n`);
    return 0;
  }
  const parsed = parse(spec, rest);
  const loaded = loadConfig(process.env, { needSources: spec.needSources === true, tty: process.stderr.isTTY === true });
  if (spec.raw !== undefined) return spec.raw(loaded);
  if (loaded.config === undefined) throw new UsageError(loaded.problems.join('\n'));
  const config = loaded.config;
  removeSecrets(process.env);
  const log = createLogger(config.logLevel, config.logFormat);
  setLogger(log);
  for (const warning of loaded.warnings) log.warn(warning);
  // The daemon handles signals itself (graceful stop); every other command fails cleanly (exit 1).
  const signal = spec.name === 'daemon' ? undefined : abortOnSignal((line) => log.warn(line));
  return spec.run!(parsed, createContext(config, log, signal));
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
    // One line per error: an expected one is the plain line below; an unexpected one is also logged, with its stack.
    if (!expected) log?.error({ err: error }, 'failed');
    for (const line of message.split('\n')) process.stderr.write(`backup-sidecar: ${line}\n`);
    if (!expected && error instanceof Error && error.stack !== undefined && log === undefined) process.stderr.write(`${error.stack}\n`);
    process.exitCode = usage ? 2 : 1;
  }
  log?.debug({ maxRssMiB: peakRssMiB(), exitCode: process.exitCode }, 'exit');
  // The work is done: a socket left open by a stalled store, or a child that ignored its signal, must not
  // keep the process alive. Output still queued for a slow reader (a pipe) is flushed first.
  for (const stream of [process.stdout, process.stderr]) await new Promise<void>((resolve) => stream.write('', () => resolve()));
  process.exit();
}

await main();
