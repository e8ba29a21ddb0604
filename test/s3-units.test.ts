import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { objectKey, parseObjectKey } from '../src/naming.ts';
import { parseS3Url } from '../src/s3/ref.ts';
import { lifecyclePlan } from '../src/s3/lifecycle.ts';
import { MAX_PART_SIZE, partSizeFor } from '../src/s3/part-size.ts';

const MIB = 1024 * 1024;
const base = { MEDIA_PATHS: '/data/uploads', S3_BUCKET: 'my-backups' };

describe('part size', () => {
  it.each([
    [0, 8 * MIB, 10_000, 8 * MIB],
    [50 * 1024 * MIB, 8 * MIB, 10_000, 11 * MIB],
    [1024 * MIB, 5 * MIB, 1000, 5 * MIB],
    [10 * 1024 * MIB, 5 * MIB, 1000, 21 * MIB],
    [100 * 1024 ** 4, 5 * MIB, 10_000, MAX_PART_SIZE],
  ])('%d bytes expected, min %d, %d parts → %d', (expected, min, parts, size) => {
    expect(partSizeFor(expected, min, parts)).toBe(size);
  });

  it('property: whole MiB, never below the minimum, and room for twice the expected size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4 * 1024 ** 4 }), fc.integer({ min: 5, max: 64 }), fc.integer({ min: 1, max: 10_000 }), (expected, minMib, parts) => {
        const size = partSizeFor(expected, minMib * MIB, parts);
        expect(size % MIB).toBe(0);
        expect(size).toBeGreaterThanOrEqual(Math.min(minMib * MIB, MAX_PART_SIZE));
        if (size < MAX_PART_SIZE) expect(size * parts).toBeGreaterThanOrEqual(2 * expected);
      }),
    );
  });
});

describe('object keys', () => {
  it('mirror the volume and parse back; anything else is foreign', () => {
    expect(objectKey('prod/app', 'daily', '20260101T000000Z', 'app.dump')).toBe('prod/app/daily/20260101T000000Z/app.dump');
    expect(objectKey('', 'yearly', '20260101T000000Z_v1', 'manifest.json')).toBe('yearly/20260101T000000Z_v1/manifest.json');
    expect(parseObjectKey('prod/app', 'prod/app/daily/20260101T000000Z/my%20db.dump')).toMatchObject({ tier: 'daily', file: 'my%20db.dump' });
    for (const key of [
      'prod/app/daily/20260101T000000Z/notes.txt',
      'prod/app/daily/20260101T000000Z/sub/app.dump',
      'prod/app/hourly/20260101T000000Z/app.dump',
      'prod/app/daily/2026-01-01/app.dump',
      'prod/other/daily/20260101T000000Z/app.dump',
      'prod/app/pre-restorex/20260101T000000Z/app.dump',
      'daily/20260101T000000Z/app.dump',
    ]) {
      expect(parseObjectKey('prod/app', key)).toBeUndefined();
    }
  });

  it('s3:// references name a run or one file of the configured bucket', () => {
    const s3 = { bucket: 'b', prefix: 'p' };
    expect(parseS3Url('s3://b/p/daily/20260101T000000Z', s3)).toEqual({ tier: 'daily', id: '20260101T000000Z', file: undefined });
    expect(parseS3Url('s3://b/p/daily/20260101T000000Z/', s3)).toEqual({ tier: 'daily', id: '20260101T000000Z', file: undefined });
    expect(parseS3Url('s3://b/p/weekly/20260101T000000Z/app.dump', s3)).toEqual({ tier: 'weekly', id: '20260101T000000Z', file: 'app.dump' });
    expect(() => parseS3Url('s3://other/p/daily/20260101T000000Z', s3)).toThrow(/is in bucket "other", but S3_BUCKET is "b"/);
    expect(() => parseS3Url('s3://b/p/daily/x', s3)).toThrow(/is not a run or file of backup-sidecar: expected s3:\/\/b\/p\/<tier>\/<run-id>\[\/<file>\]/);
  });
});

describe('S3 configuration', () => {
  it('defaults: path style and checksums only when required with a custom endpoint', () => {
    const aws = loadConfig(base).config!.s3!;
    expect(aws).toMatchObject({ bucket: 'my-backups', prefix: '', region: 'us-east-1', forcePathStyle: false, checksums: 'always', partSize: 5 * MIB, queueSize: 2, maxParts: 10_000, credentials: undefined });
    const minio = loadConfig({ ...base, S3_ENDPOINT: 'http://minio:9000', S3_PREFIX: '/prod/app/', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' }).config!.s3!;
    expect(minio).toMatchObject({ prefix: 'prod/app', forcePathStyle: true, checksums: 'when-required', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
    expect(loadConfig({ ...base, S3_ENDPOINT: 'http://minio:9000', S3_CHECKSUMS: 'always' }).config!.s3!.checksums).toBe('always');
    expect(loadConfig({ ...base, S3_PART_SIZE: '64MiB', S3_KEEP_DAYS: '30' }).config!.s3).toMatchObject({ partSize: 64 * MIB, retention: { days: 30, weeks: 4 } });
    expect(loadConfig(base).config!.s3!.retention).toEqual(loadConfig(base).config!.retention);
  });

  it.each([
    [{ S3_BUCKET: 'My_Bucket' }, /^S3_BUCKET="My_Bucket": expected a bucket name: 3 to 63 lowercase letters/],
    [{ S3_PART_SIZE: '1MiB' }, /^S3_PART_SIZE="1MiB": expected a size from 5MB to 5GB, such as 16MiB/],
    [{ S3_PART_SIZE: 'lots' }, /^S3_PART_SIZE="lots": expected a size/],
    [{ S3_QUEUE_SIZE: '0' }, /^S3_QUEUE_SIZE="0": expected a whole number from 1 to 64/],
    [{ S3_ENDPOINT: 'minio:9000 x' }, /^S3_ENDPOINT="minio:9000 x": expected an http\(s\) URL/],
    [{ S3_SSE: 'kms' }, /^S3_SSE="kms": expected AES256 or aws:kms/],
    [{ S3_SSE_KMS_KEY_ID: 'arn:x' }, /^S3_SSE_KMS_KEY_ID: only used with S3_SSE=aws:kms/],
    [{ AWS_ACCESS_KEY_ID: 'k' }, /^AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: set both or neither/],
    [{ S3_PREFIX: 'a//b' }, /^S3_PREFIX="a\/\/b": expected folder names/],
    [{ S3_TRANSITION_TIERS: 'hourly' }, /^S3_TRANSITION_TIERS="hourly": expected tiers among daily/],
    [{ S3_TIMEOUT: 'soon' }, /^S3_TIMEOUT="soon": expected a duration/],
    [{ BACKUP_KEEP_DAYS: '-2' }, /^BACKUP_KEEP_DAYS="-2": expected a whole number from -1/],
    [{ TZ: 'Mars/Olympus' }, /^TZ="Mars\/Olympus": expected an IANA time zone/],
  ])('%j gives one clear line', (override, expected) => {
    const { config, problems } = loadConfig({ ...base, ...override });
    expect(config).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('never shows a secret key in a problem', () => {
    const { problems } = loadConfig({ ...base, AWS_SECRET_ACCESS_KEY: 'super-secret-value' });
    expect(problems.join('\n')).not.toContain('super-secret-value');
  });
});

describe('lifecycle plan', () => {
  const s3 = (over: object = {}) => ({
    prefix: '',
    retention: { days: 7, weeks: 4, months: 6, years: 0, minutes: undefined },
    lifecycle: { transitionDays: undefined, transitionClass: 'GLACIER' as const, transitionTiers: ['monthly', 'yearly'], marginDays: 7, abortIncompleteDays: 3 },
    ...over,
  });

  it('expires each tier after its window (and those of lower tiers) plus the margin', () => {
    const { rules } = lifecyclePlan(s3());
    expect(rules.map((r) => [r.ID, r.Filter?.Prefix, r.Expiration?.Days])).toEqual([
      ['backup-sidecar:/:daily', 'daily/', 15],
      ['backup-sidecar:/:weekly', 'weekly/', 42],
      ['backup-sidecar:/:monthly', 'monthly/', 224],
      ['backup-sidecar:/:yearly', 'yearly/', 224],
      ['backup-sidecar:/:abort-incomplete-uploads', '', undefined],
    ]);
    expect(rules.at(-1)?.AbortIncompleteMultipartUpload).toEqual({ DaysAfterInitiation: 3 });
  });

  it('-1 means no expiration; a transition later than the expiration is left out, with a note', () => {
    const plan = lifecyclePlan(s3({ retention: { days: 7, weeks: 4, months: 1, years: -1, minutes: undefined }, lifecycle: { transitionDays: 90, transitionClass: 'DEEP_ARCHIVE', transitionTiers: ['monthly', 'yearly'], marginDays: 7, abortIncompleteDays: 3 } }));
    const yearly = plan.rules.find((r) => r.ID?.endsWith(':yearly'));
    expect(yearly?.Expiration).toBeUndefined();
    expect(yearly?.Transitions).toEqual([{ Days: 90, StorageClass: 'DEEP_ARCHIVE' }]);
    expect(plan.rules.find((r) => r.ID?.endsWith(':monthly'))?.Transitions).toBeUndefined();
    expect(plan.notes).toEqual(['monthly: no transition, runs expire after 69 days, before S3_TRANSITION_DAYS=90']);
  });
});
