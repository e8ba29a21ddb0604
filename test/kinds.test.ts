import { describe, expect, it } from 'vitest';
import { KINDS, kindOf } from '../src/kinds/registry.ts';
import { artifact } from '../src/manifest.ts';

const sha = 'a'.repeat(64);
const samples = {
  globals: { kind: 'globals', file: 'globals.sql', source: 'globals', size: 1, sha256: sha, format: 'sql', roles: [], tablespaces: [] },
  postgres: { kind: 'postgres', file: 'app.dump', source: 'app', size: 1, sha256: sha, format: 'custom', compression: 'default', tableCount: 0, rowCounts: {}, largeObjects: 0 },
  media: { kind: 'media', file: 'uploads.tar.gz', source: 'uploads', size: 1, sha256: sha, format: 'tar', compression: 'gzip', path: '/data', entries: 0, warnings: [] },
  basebackup: {
    kind: 'basebackup', file: 'base.tar.zst', source: 'cluster', size: 1, sha256: sha, format: 'tar', compression: 'zstd', timeline: 1, startLsn: '0/2000028', endLsn: '0/2000100',
    startTime: '2026-11-01T00:00:00.000Z', endTime: '2026-11-01T00:00:01.000Z', walSegmentSize: 16777216, serverVersion: '15.14',
  },
} as const;

describe('the kinds registry', () => {
  it('holds each kind once, roles first (restores apply them before the databases that refer to them)', () => {
    const names = KINDS.map((k) => k.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names[0]).toBe('globals');
    expect([...names].sort()).toEqual(Object.keys(samples).sort());
  });

  it('every kind has its manifest part, and kindOf finds the kind of each artifact', () => {
    for (const [name, sample] of Object.entries(samples)) {
      const parsed = artifact.parse(sample);
      expect(kindOf(parsed).name).toBe(name);
    }
  });

  it('each kind admits only the file name it writes, encrypted or not', () => {
    for (const sample of Object.values(samples)) {
      expect(artifact.safeParse({ ...sample, file: `${sample.file}.age`, encryption: { format: 'age', plainSha256: sha, plainSize: 1 } }).success).toBe(true);
      expect(artifact.safeParse({ ...sample, file: `${sample.file}.age` }).success).toBe(false);
      expect(artifact.safeParse({ ...sample, file: `../${sample.file}` }).success).toBe(false);
    }
    expect(artifact.safeParse({ ...samples.postgres, source: 'x'.repeat(64), file: `${'x'.repeat(64)}.dump` }).success).toBe(false);
    expect(artifact.safeParse({ ...samples.media, source: '../up', file: '../up.tar.gz' }).success).toBe(false);
    expect(artifact.safeParse({ ...samples.globals, source: 'roles' }).success).toBe(false);
    expect(artifact.safeParse({ ...samples.basebackup, source: 'other' }).success).toBe(false);
    expect(artifact.safeParse({ ...samples.basebackup, endLsn: '0/x; DROP' }).success).toBe(false);
  });

  it('only the kinds that restore into a database need the server; each retarget flag belongs to one kind', () => {
    // A base backup is restored by restore --pitr into a folder, never through a server.
    expect(KINDS.filter((k) => !k.needsServer).map((k) => k.name)).toEqual(['media', 'basebackup']);
    expect(KINDS.flatMap((k) => (k.retarget === undefined ? [] : [k.retarget.flag])).sort()).toEqual(['--target-db', '--target-dir']);
  });
});
