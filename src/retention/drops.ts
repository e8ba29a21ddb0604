import prettyBytes from 'pretty-bytes';
import type { SizeDropConfig } from '../config/config.ts';

/** A run as size-drop detection sees it: its artifacts' sizes and row counts, and whether a person acknowledged its drop. */
export interface DropRun {
  id: string;
  time: Date;
  artifacts: readonly { source: string; kind: string; size: number; rowCounts?: Readonly<Record<string, number>> }[];
  acknowledged: boolean;
}

/** One quiet disaster candidate: a source much smaller than in the run before. */
export interface Drop {
  /** The flagged run: the first one after the drop (`backup-sidecar ack <runId>`). */
  runId: string;
  /** The last run before the drop: the good copy retention keeps until the drop is acknowledged. */
  previousRunId: string;
  source: string;
  kind: string;
  /** `size`: the artifact's bytes; `rows`: one table's row count. */
  what: 'size' | 'rows';
  /** The table, for `rows`. */
  table: string | null;
  before: number;
  after: number;
  acknowledged: boolean;
}

/**
 * Every drop in `runs` (any order; safety backups left out by the caller): each artifact against the same
 * source in the newest older run that has it. Pure. With `warn` 0, none.
 */
export function findDrops(runs: readonly DropRun[], { warn, minRows }: SizeDropConfig): Drop[] {
  if (warn <= 0) return [];
  const ordered = [...runs].sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
  const drops: Drop[] = [];
  ordered.forEach((run, i) => {
    for (const a of run.artifacts) {
      const previousRun = ordered.slice(i + 1).find((r) => r.artifacts.some((p) => p.source === a.source && p.kind === a.kind));
      if (previousRun === undefined) continue;
      const p = previousRun.artifacts.find((x) => x.source === a.source && x.kind === a.kind)!;
      const base = { runId: run.id, previousRunId: previousRun.id, source: a.source, kind: a.kind, acknowledged: run.acknowledged };
      if (a.size < p.size * warn) drops.push({ ...base, what: 'size', table: null, before: p.size, after: a.size });
      // A table gone from the dump dropped to no rows.
      for (const [table, before] of Object.entries(p.rowCounts ?? {})) {
        const after = a.rowCounts?.[table] ?? 0;
        if (a.rowCounts !== undefined && before >= Math.max(1, minRows) && after < before * warn) drops.push({ ...base, what: 'rows', table, before, after });
      }
    }
  });
  return drops;
}

/** A drop as the webhooks, the history and ack.json record it: what shrank, and by how much. */
export function dropNote(d: Drop): Pick<Drop, 'source' | 'kind' | 'what' | 'table' | 'before' | 'after'> {
  return { source: d.source, kind: d.kind, what: d.what, table: d.table, before: d.before, after: d.after };
}

/** The drops not yet acknowledged: what the page, status, webhook and metrics flag. */
export function openDrops(drops: readonly Drop[]): Drop[] {
  return drops.filter((d) => !d.acknowledged);
}

/**
 * Runs retention must keep, with the reason: the last run before each unacknowledged drop (the good copy),
 * and the flagged run itself (it holds the acknowledgement, and is the evidence).
 */
export function dropHolds(drops: readonly Drop[]): Map<string, string> {
  const holds = new Map<string, string>();
  for (const d of openDrops(drops)) {
    const ack = `kept until \`backup-sidecar ack ${d.runId}\``;
    if (!holds.has(d.previousRunId)) holds.set(d.previousRunId, `the last run before the ${dropWords(d)} in ${d.runId}: ${ack}`);
    if (!holds.has(d.runId)) holds.set(d.runId, `flagged: ${dropWords(d)}; ${ack}`);
  }
  return holds;
}

/** "size drop of postgres app (12 MB → 3 MB)" or "row drop of postgres app, table public.orders (5000 → 0 rows)", for people. */
export function dropWords(d: Drop): string {
  return d.what === 'size' ? `size drop of ${d.kind} ${d.source} (${prettyBytes(d.before)} → ${prettyBytes(d.after)})` : `row drop of ${d.kind} ${d.source}, table ${d.table} (${d.before} → ${d.after} rows)`;
}
