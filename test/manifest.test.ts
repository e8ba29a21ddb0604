import { describe, expect, it } from 'vitest';
import { parseManifest, type Manifest } from '../src/manifest.ts';

const SHA = 'a'.repeat(64);
const base: Manifest = {
  targets: [],
  manifestVersion: 1,
  runId: '20261123T092131Z',
  tier: 'daily',
  label: null,
  startedAt: '2026-11-23T09:21:31.382Z',
  finishedAt: '2026-11-23T09:21:31.669Z',
  tool: { name: 'backup-sidecar', version: '0.1.0' },
  postgres: null,
  artifacts: [
    { file: 'app.dump', source: 'app', kind: 'postgres', size: 1, sha256: SHA, encryption: null, format: 'custom', compression: 'default', fileCompression: 'none', tableCount: 0, rowCounts: {}, largeObjects: 0 },
    { file: 'uploads.tar.gz', source: 'uploads', kind: 'media', size: 1, sha256: SHA, encryption: null, format: 'tar', compression: 'gzip', path: '/data', entries: 0, warnings: [] },
    { file: 'globals.sql', source: 'globals', kind: 'globals', size: 1, sha256: SHA, encryption: null, format: 'sql', roles: [], tablespaces: [] },
  ],
  warnings: [],
  offsite: null,
};

const parse = (m: unknown, expected?: { id: string; tier: string }) => parseManifest(JSON.stringify(m), 'x/manifest.json', expected);
const withArtifact = (i: number, change: Record<string, unknown>) => ({ ...base, artifacts: base.artifacts.map((a, j) => (j === i ? { ...a, ...change } : a)) });

describe('a manifest names only files the tool itself writes', () => {
  it('accepts a genuine manifest, encrypted files and database names made file-name safe', () => {
    expect(parse(base).artifacts).toHaveLength(3);
    const enc = { format: 'age', plainSha256: SHA, plainSize: 1 };
    expect(() => parse(withArtifact(0, { file: 'app.dump.age', encryption: enc }))).not.toThrow();
    expect(() => parse(withArtifact(0, { source: 'a=b c', file: 'a%3Db%20c.dump' }))).not.toThrow();
  });

  const forged: [string, Record<string, unknown>, number][] = [
    ['a path with ../', { file: '../../../tmp/x.dump' }, 0],
    ['an absolute path', { file: '/etc/cron.d/x' }, 0],
    ['a file of another source', { file: 'other.dump' }, 0],
    ['a dump named like a tarball', { file: 'app.tar.gz' }, 0],
    ['an .age file that is not encrypted', { file: 'app.dump.age' }, 0],
    ['a source no database can have (64 bytes)', { source: 'x'.repeat(64), file: `${'x'.repeat(64)}.dump` }, 0],
    ['a media source with a slash', { source: '../x', file: '../x.tar.gz' }, 1],
    ['a tarball of the wrong compression', { file: 'uploads.tar.zst' }, 1],
    ['a globals file under another name', { file: 'roles.sql' }, 2],
    ['a globals file of another source', { source: 'x' }, 2],
  ];
  for (const [what, change, i] of forged) {
    it(`refuses ${what}, in one line`, () => {
      expect(() => parse(withArtifact(i, change))).toThrow(/^x\/manifest.json is not a backup-sidecar manifest: artifacts\.\d\.file .* is not the file backup-sidecar writes for .*; nothing in the run is used$/);
    });
  }

  it('refuses a run id that is not one, the same file twice, and a run that lies elsewhere than it says', () => {
    expect(() => parse({ ...base, runId: '../../x' })).toThrow(/runId is not a run id/);
    expect(() => parse({ ...base, artifacts: [base.artifacts[0], base.artifacts[0]] })).toThrow(/name the same file twice/);
    expect(() => parse(base, { id: '20261123T092131Z', tier: 'weekly' })).toThrow(/describes run daily\/20261123T092131Z, not weekly\/20261123T092131Z: it was moved or forged/);
    expect(() => parse(base, { id: '20990101T000000Z', tier: 'daily' })).toThrow(/moved or forged/);
    expect(parse(base, { id: '20261123T092131Z', tier: 'daily' }).runId).toBe('20261123T092131Z');
  });
});
