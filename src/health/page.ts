import ms from 'ms';
import prettyBytes from 'pretty-bytes';
import { lagWords } from '../wal/state.ts';
import type { StatusReport } from './report.ts';

/**
 * The status page: one self-contained HTML document (inline CSS, charts as inline SVG, no script, no
 * external asset), so it works air-gapped and under a Content-Security-Policy that forbids everything
 * else. Pure: the report in, the page out. Every value from the volume is escaped.
 */

/** The page's Content-Security-Policy: nothing loads, nothing runs; only its own inline styles apply. */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Seconds between the page's own refreshes. */
const REFRESH_SECONDS = 60;

const COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];

function esc(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

function age(seconds: number): string {
  return ms(Math.max(0, Math.round(seconds * 1000)), { long: true });
}

function duration(seconds: number): string {
  return seconds < 10 ? `${seconds.toFixed(1)} s` : ms(Math.round(seconds * 1000));
}

interface Series {
  name: string;
  /** One value per run (null: the source was not in that run). */
  values: (number | null)[];
}

/** A line chart of one value per run and source, as inline SVG; hover a point for its value. */
function chart(id: string, title: string, runs: StatusReport['runs'], series: Series[], format: (n: number) => string): string {
  const width = 880;
  const height = 220;
  const left = 70;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  if (series.length === 0 || max === 0) return `<section id="${id}"><h2>${esc(title)}</h2><p class="muted">No data yet.</p></section>`;
  const x = (i: number) => left + (runs.length <= 1 ? 0 : (i * (width - left - right)) / (runs.length - 1));
  const y = (v: number) => top + (height - top - bottom) * (1 - v / max);
  const grid = [0, 0.5, 1]
    .map((f) => `<line x1="${left}" x2="${width - right}" y1="${y(max * f)}" y2="${y(max * f)}" class="grid"/><text x="${left - 6}" y="${y(max * f) + 4}" text-anchor="end">${esc(format(max * f))}</text>`)
    .join('');
  const first = runs[0]?.startedAt.slice(0, 10) ?? '';
  const last = runs.at(-1)?.startedAt.slice(0, 10) ?? '';
  const axis = `<text x="${left}" y="${height - 6}">${esc(first)}</text><text x="${width - right}" y="${height - 6}" text-anchor="end">${esc(last)}</text>`;
  const lines = series
    .map((s, k) => {
      const color = COLORS[k % COLORS.length]!;
      const points = s.values.map((v, i) => (v === null ? undefined : { i, v })).filter((p) => p !== undefined);
      const path = points.map((p) => `${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
      const dots = points.map((p) => `<circle cx="${x(p.i).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3" fill="${color}"><title>${esc(`${s.name}: ${format(p.v)} (run ${runs[p.i]?.runId ?? '?'})`)}</title></circle>`).join('');
      return `<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>${dots}`;
    })
    .join('');
  const legend = series.map((s, k) => `<span class="key"><i style="background:${COLORS[k % COLORS.length]}"></i>${esc(s.name)}</span>`).join(' ');
  return `<section id="${id}"><h2>${esc(title)}</h2><svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}">${grid}${axis}${lines}</svg><div class="legend">${legend}</div></section>`;
}

/** One series per source (kind and name) over the runs. */
function seriesOf(runs: StatusReport['runs'], value: (a: StatusReport['runs'][number]['artifacts'][number]) => number | null): Series[] {
  const names = [...new Set(runs.flatMap((r) => r.artifacts.map((a) => `${a.kind} ${a.source}`)))];
  return names.map((name) => ({ name, values: runs.map((r) => { const a = r.artifacts.find((x) => `${x.kind} ${x.source}` === name); return a === undefined ? null : value(a); }) }));
}

function stateBadge(state: string): string {
  const cls = state === 'complete' || state === 'ok' || state === 'passed' ? 'good' : state === 'pending' || state === 'partial' ? 'warn' : 'bad';
  return `<span class="badge ${cls}">${esc(state)}</span>`;
}

function dropText(d: StatusReport['drops'][number]): string {
  return d.what === 'size'
    ? `${d.kind} ${d.source}: ${prettyBytes(d.before)} → ${prettyBytes(d.after)}`
    : `${d.kind} ${d.source}, table ${d.table}: ${d.before} → ${d.after} rows`;
}

export function statusPage(report: StatusReport): string {
  const { health } = report;
  const verdict = health.healthy ? (report.drops.length > 0 ? 'Backups are running, but one needs a look' : 'Backups are fine') : 'Backups need attention';
  const tone = !health.healthy ? 'bad' : report.drops.length > 0 ? 'warn' : 'good';
  const drops =
    report.drops.length === 0
      ? ''
      : `<section id="drops" class="panel warn"><h2>Size drop</h2><ul>${report.drops
          .map((d) => `<li>Run <code>${esc(d.runId)}</code>: <strong>drop</strong> of ${esc(dropText(d))}. Run <code>${esc(d.previousRunId)}</code>, the last before it, is kept until someone checks and runs <code>backup-sidecar ack ${esc(d.runId)}</code>.</li>`)
          .join('')}</ul></section>`;
  const disk = report.disk;
  const facts = [
    ['next-run', 'Next backup', report.schedule.next === null ? 'not scheduled' : `${report.schedule.next} (${report.schedule.cron}, ${report.schedule.timeZone})`],
    ['last-drill', 'Last restore drill', report.lastDrill === null ? 'none yet' : `${report.lastDrill.ok ? 'passed' : 'FAILED'} at ${report.lastDrill.finishedAt} (run ${report.lastDrill.runId})`],
    ['disk', 'Free space', disk.freeBytes === null ? 'unknown' : `${prettyBytes(disk.freeBytes)} free${disk.low ? ', BELOW' : ', above'} DISK_FREE_MIN (${prettyBytes(disk.minBytes)})`],
    ...(report.wal === null
      ? []
      : [
          ['wal', 'WAL archive', report.wal.gaps.length > 0 ? `GAP: ${report.wal.gaps.join(', ')} missing` : report.wal.newest === null ? 'nothing yet' : `${report.wal.segments} segments, newest ${report.wal.newest}${report.wal.newestAt === null ? '' : ` (${report.wal.newestAt})`}`],
          ['wal-streaming', 'WAL streaming', streamingText(report.wal.streaming)],
        ]),
    ['last-error', 'Last error', report.lastError === null ? 'none' : `${report.lastError.at}: ${report.lastError.message}`],
  ]
    .map(([id, label, value]) => `<div id="${id}" class="fact${(id === 'disk' && disk.low) || (id === 'last-drill' && report.lastDrill?.ok === false) || (id === 'wal' && (report.wal?.gaps.length ?? 0) > 0) || (id === 'wal-streaming' && report.wal?.streaming?.up === false) ? ' bad' : ''}"><dt>${label}</dt><dd>${esc(value!)}</dd></div>`)
    .join('');
  const tiers =
    report.tiers.length === 0
      ? '<p class="muted">No runs yet.</p>'
      : `<table><thead><tr><th>Tier</th><th>Runs</th><th>Newest</th><th>Age</th><th>Size</th></tr></thead><tbody>${report.tiers
          .map((t) => `<tr><td>${esc(t.tier)}</td><td>${t.runs}</td><td><code>${esc(t.newest.runId)}</code></td><td>${esc(age(t.newest.ageSeconds))}</td><td>${prettyBytes(t.newest.bytes)}</td></tr>`)
          .join('')}</tbody></table>`;
  const targets = [...new Set(report.runs.flatMap((r) => r.targets.map((t) => t.url)))];
  const rows = [...report.runs]
    .reverse()
    .map((r) => {
      const perTarget = targets.map((url) => `<td>${stateBadge(r.targets.find((t) => t.url === url)?.state ?? '–')}</td>`).join('');
      const drill = r.drill === null ? '<span class="muted">–</span>' : stateBadge(r.drill.ok ? 'passed' : 'failed');
      const drop = r.drop === 'open' ? '<strong class="drop">drop</strong>' : r.drop === 'acknowledged' ? '<span class="muted">drop (acknowledged)</span>' : '';
      const note = [drop, r.inVolume || r.runId === null ? '' : '<span class="muted">pruned</span>', r.error === null ? '' : esc(r.error.split('\n')[0]!)].filter((x) => x !== '').join(' ');
      return `<tr class="${r.status}"><td>${esc(r.startedAt.replace('T', ' ').slice(0, 19))}</td><td><code>${esc(r.runId ?? '–')}</code></td><td>${esc(r.tier ?? '–')}</td><td>${stateBadge(r.status)}</td><td>${r.status === 'failed' ? '–' : prettyBytes(r.bytes)}</td>${perTarget}<td>${drill}</td><td class="note">${note}</td></tr>`;
    })
    .join('');
  const runsTable =
    report.runs.length === 0
      ? '<p class="muted">No runs yet.</p>'
      : `<table><thead><tr><th>Started (UTC)</th><th>Run</th><th>Tier</th><th>Outcome</th><th>Size</th>${targets.map((u) => `<th>${esc(u)}</th>`).join('')}<th>Drill</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
  const suspicious = report.suspicious.length === 0 ? '' : `<section class="panel bad"><h2>Suspicious runs</h2><p>Dated in the future, kept but never counted: ${esc(report.suspicious.join(', '))}. Check the clock, and who can write the volume.</p></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}"><link rel="icon" href="data:,">
<title>${health.healthy ? 'OK' : 'FAILING'}: backup-sidecar</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;padding:1.5rem;color:#111827;background:#f9fafb;max-width:1100px}
h1{font-size:1.3rem;margin:0 0 1rem}h2{font-size:1.05rem;margin:0 0 .5rem}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:1rem;margin:0 0 1rem}
#verdict{border-width:2px}#verdict p{margin:.25rem 0 0}
.good{border-color:#059669}.warn{border-color:#d97706}.bad{border-color:#dc2626}
#verdict.good h2{color:#047857}#verdict.warn h2{color:#b45309}#verdict.bad h2{color:#b91c1c}
#drops{background:#fffbeb}
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:.75rem;margin:0}
.fact dt{color:#6b7280;font-size:.85rem}.fact dd{margin:0}.fact.bad dd{color:#b91c1c;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #f3f4f6;white-space:nowrap}
th{color:#6b7280;font-weight:500}td.note{white-space:normal}tr.failed td{background:#fef2f2}
.badge{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:.8rem;border:1px solid}
.badge.good{color:#047857}.badge.warn{color:#b45309}.badge.bad{color:#b91c1c}
.drop{color:#b45309}.muted{color:#9ca3af}
svg{width:100%;height:auto}svg text{font-size:11px;fill:#6b7280}svg .grid{stroke:#e5e7eb}
.legend .key{margin-right:1rem}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.runs{overflow-x:auto}footer{color:#9ca3af;font-size:.8rem}
</style></head><body>
<h1>backup-sidecar</h1>
<section id="verdict" class="${tone}" data-healthy="${health.healthy}"><h2>${esc(verdict)}</h2><p>${esc(health.reason)}</p></section>
${drops}${suspicious}<section><dl>${facts}</dl></section>
<section id="tiers"><h2>Newest run per tier</h2>${tiers}</section>
${chart('chart-size', 'Artifact size per source', report.runs, seriesOf(report.runs, (a) => a.size), (n) => prettyBytes(n))}
${chart('chart-duration', 'Duration per source', report.runs, seriesOf(report.runs, (a) => a.durationSeconds), duration)}
<section id="runs" class="runs"><h2>Last ${report.runs.length} runs</h2>${runsTable}</section>
<footer>backup-sidecar ${esc(report.version)} · generated ${esc(report.generatedAt)} · refreshes every ${REFRESH_SECONDS} s · <a href="?format=json">JSON</a> · <a href="/metrics">metrics</a></footer>
</body></html>
`;
}

function streamingText(streaming: NonNullable<StatusReport['wal']>['streaming']): string {
  if (streaming === null) return 'not started yet';
  if (!streaming.up) return `DOWN since ${streaming.since}: ${streaming.error ?? 'unknown'}`;
  return `up since ${streaming.since}${streaming.lag === null ? '' : `; ${lagWords(streaming.lag)}`}`;
}
