import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import type { LoadResult } from '../config/load.ts';
import { ENV } from '../config/schema.ts';
import { maskUrlCredentials } from '../util/redact.ts';
import { table } from './list.ts';

/** A default the way a person writes it: durations as 60s or 10m, sizes in binary units (as the example of the variable is written). */
function asWritten(value: unknown, example: string): string {
  if (typeof value !== 'number') return String(value);
  if (/^\d+(ms|s|m|h|d)$/.test(example)) return ms(value);
  if (/^\d+(\.\d+)?\s*[KMGT]iB$/.test(example)) return prettyBytes(value, { binary: true }).replace(' ', '');
  return String(value);
}

/** `print-config`: the effective settings, secrets masked, then what is wrong; exit 2 if anything is. */
export function printConfigCommand(result: LoadResult): number {
  const rows = [['VARIABLE', 'VALUE', 'FROM']];
  for (const s of result.settings) {
    if (s.value !== undefined) {
      rows.push([s.name, s.secret ? '******** (set)' : maskUrlCredentials(s.value), s.source === 'file' ? `${s.name}_FILE` : 'env']);
      continue;
    }
    const fallback = ENV[s.name].schema.safeParse(undefined);
    const shown = fallback.success && fallback.data !== undefined && !(Array.isArray(fallback.data) && fallback.data.length === 0);
    rows.push([s.name, shown ? asWritten(fallback.data, ENV[s.name].example) : '', shown ? 'default' : 'unset']);
  }
  process.stdout.write(`${table(rows)}\n`);
  const c = result.config;
  if (c !== undefined) {
    process.stdout.write(
      `\nbacks up: ${[...(c.postgres?.all === true ? [`every database${c.postgres.exclude.length > 0 ? ` but ${c.postgres.exclude.join(', ')}` : ''}, with the roles`] : (c.postgres?.databases.map((d) => `database ${d}`) ?? [])), ...c.media.map((m) => `folder ${m.name} (${m.path})`)].join(', ')}\ninto: ${c.backupDir}\n`,
    );
  }
  if (c !== undefined) {
    const s = c.signing;
    process.stdout.write(
      s === undefined
        ? 'signing: off: runs are unsigned, so anyone who can write to the bucket can forge a run that restore would use; set BACKUP_SIGNING_KEY (openssl rand -hex 32)\n'
        : s.from === 'ENCRYPTION_PASSPHRASE'
          ? 'signing: on, with a key derived from ENCRYPTION_PASSPHRASE (HKDF); BACKUP_SIGNING_KEY would set one of its own\n'
          : `signing: on, with BACKUP_SIGNING_KEY (${s.keys.length} key${s.keys.length === 1 ? '' : 's'}; the first signs)\n`,
    );
  }
  if (result.warnings.length > 0) process.stdout.write(`\n${result.warnings.map((w) => `warning: ${w}`).join('\n')}\n`);
  if (result.problems.length === 0) {
    process.stdout.write('\nno problems found\n');
    return 0;
  }
  process.stdout.write(`\n${result.problems.length} problem(s):\n${result.problems.map((p) => `  ${p}`).join('\n')}\n`);
  return 2;
}
