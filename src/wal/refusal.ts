import { firstLine } from '../errors.ts';

/**
 * The one line that says why pg_basebackup or pg_receivewal could not work: which of the server's
 * settings is missing (a REPLICATION role, a pg_hba.conf replication line, wal_level, wal senders), or
 * the tool's own error. Their verbose progress lines are skipped.
 */
export function replicationProblem(stderr: string, user: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const error = lines.find((l) => /\b(error|FATAL|fatal):/.test(l)) ?? firstLine(stderr);
  const text = error.replace(/^(pg_basebackup|pg_receivewal): (error: )?/, '');
  if (/no pg_hba\.conf entry for replication connection/.test(text)) {
    return `the server refuses replication connections from this host (${text}): add a pg_hba.conf line such as "host replication ${user} <the sidecar's network> scram-sha-256" and reload the server`;
  }
  if (/must be (superuser or )?(a )?replication role|permission denied to start WAL sender|must have the REPLICATION attribute/i.test(text)) {
    return `${user} may not open a replication connection (${text}): ALTER ROLE ${user} REPLICATION, or use a role that has it`;
  }
  if (/wal_level/.test(text)) return `the server's wal_level is too low (${text}): set wal_level=replica (the official image's default) and restart it`;
  if (/max_wal_senders|too many clients|number of requested standby connections/.test(text)) return `the server has no free WAL sender (${text}): raise max_wal_senders and restart it`;
  return text;
}
