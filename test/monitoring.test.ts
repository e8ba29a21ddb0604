import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { metricsText } from '../src/health/metrics.ts';
import { ROOT } from './support/cli.ts';
import { promtool } from './support/promtool.ts';

const DIR = join(ROOT, 'examples/monitoring');

/** Every backup_sidecar_* name the daemon can expose (from its HELP lines, with nothing in the volume). */
function exposedNames(): Set<string> {
  const text = metricsText(
    { healthy: true, reason: '', maxAgeMs: 0, newest: undefined, runs: [], status: undefined, lastDrill: undefined, suspicious: [], wal: { segments: 0, newest: undefined, newestAt: undefined, gaps: [] }, walStreaming: undefined },
    { runs: 0, failures: 0, outcomes: { ok: 0, partial: 0, failed: 0 }, skipped: 0, drills: 0, drillFailures: 0 },
    { schedule: { intervalSeconds: 0, next: undefined }, drops: [], freeBytes: 0, diskFreeMin: 0 },
  );
  return new Set([...text.matchAll(/^# HELP (\S+)/gm)].map((m) => m[1]!));
}

function namesIn(text: string): string[] {
  return [...new Set([...text.matchAll(/backup_sidecar_[a-z_]+/g)].map((m) => m[0]))];
}

describe('examples/monitoring', () => {
  it('prometheus-rules.yml passes `promtool check rules` and its unit tests (each alert fires, and only then)', async () => {
    const check = await promtool(['check', 'rules', join(DIR, 'prometheus-rules.yml')]);
    expect(check.exitCode, check.all).toBe(0);
    expect(check.all).toContain('SUCCESS: 9 rules found');
    const test = await promtool(['test', 'rules', join(DIR, 'prometheus-rules.test.yml')]);
    expect(test.exitCode, test.all).toBe(0);
  });

  it('the rules and the Grafana dashboard use only metrics the daemon exposes', async () => {
    const exposed = exposedNames();
    const rules = await readFile(join(DIR, 'prometheus-rules.yml'), 'utf8');
    const dashboard = await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8');
    for (const name of [...namesIn(rules), ...namesIn(dashboard)]) expect(exposed, `${name} is not exposed`).toContain(name);
  });

  it('grafana-dashboard.json is an importable dashboard: a datasource variable, panels that do not overlap, each with a query', async () => {
    const dashboard = JSON.parse(await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
      uid: string;
      templating: { list: { name: string; type: string }[] };
      panels: { id: number; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets: { expr: string }[] }[];
    };
    expect(dashboard.uid).toBe('backup-sidecar');
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const [i, a] of dashboard.panels.entries()) {
      expect(a.targets.length, a.title).toBeGreaterThan(0);
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
      for (const b of dashboard.panels.slice(i + 1)) {
        const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        expect(apart, `${a.title} overlaps ${b.title}`).toBe(true);
      }
    }
    const titles = dashboard.panels.map((p) => p.title);
    expect(titles).toEqual(expect.arrayContaining(['Last successful backup', 'Artifact size per source', 'Duration per source', 'Backups by outcome', 'Offsite lag per target', 'Last restore drill', 'Free space in the volume']));
  });

  it('the ServiceMonitor scrapes the metrics port of the sidecar example', async () => {
    const load = async (file: string) => parseAllDocuments(await readFile(join(ROOT, 'examples/kubernetes', file), 'utf8')).map((d) => d.toJS() as any);
    const [service, monitor] = await load('servicemonitor.yaml');
    const [deployment] = await load('sidecar.yaml');
    expect(monitor.kind).toBe('ServiceMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual(service.metadata.labels);
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
    const backup = deployment.spec.template.spec.containers.find((c: { name: string }) => c.name === 'backup');
    const port = backup.ports.find((p: { name: string }) => p.name === service.spec.ports[0].targetPort);
    expect(String(port.containerPort)).toBe(backup.env.find((e: { name: string }) => e.name === 'HEALTHCHECK_PORT').value);
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: service.spec.ports[0].name, path: '/metrics' });
  });
});
