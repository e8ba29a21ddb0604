import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dumpFileName, fileSafe, formatRunId, labelSlug, parseRunId, tarballFileName } from '../src/naming.ts';

describe('run ids', () => {
  it('formats the UTC start time and the label', () => {
    const t = new Date('2026-03-04T05:06:07.890Z');
    expect(formatRunId(t)).toBe('20260304T050607Z');
    expect(formatRunId(t, 'v1.2.3')).toBe('20260304T050607Z_v1.2.3');
    expect(formatRunId(t, 'release 7/8 (hotfix)')).toBe('20260304T050607Z_release-7-8-hotfix');
    expect(formatRunId(t, '🙂')).toBe('20260304T050607Z');
  });

  it.each([
    ['20261301T000000Z', 'month 13'],
    ['20260230T000000Z', 'February 30'],
    ['20260101T246000Z', 'hour 24'],
    ['20260101T000000', 'no Z'],
    ['20260101T000000Z_', 'empty label'],
    ['20260101T000000Z_a b', 'space in label'],
    ['x20260101T000000Z', 'prefix'],
    ['.partial', 'our own folder'],
    ['lost+found', 'a file system folder'],
  ])('rejects %s (%s)', (name) => {
    expect(parseRunId(name)).toBeUndefined();
  });

  it('round-trips any time and label (property)', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('1970-01-01'), max: new Date('9999-12-31'), noInvalidDate: true }), fc.option(fc.string({ maxLength: 100 }), { nil: undefined }), (date, label) => {
        const id = formatRunId(date, label);
        const parsed = parseRunId(id);
        expect(parsed).toBeDefined();
        expect(parsed!.time.getTime()).toBe(Math.floor(date.getTime() / 1000) * 1000);
        expect(parsed!.label).toBe(labelSlug(label));
      }),
      { numRuns: 500 },
    );
  });

  it('sorts like time (property)', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('2000-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }), fc.date({ min: new Date('2000-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }), (a, b) => {
        const [x, y] = [formatRunId(a), formatRunId(b)];
        expect(Math.sign(x.localeCompare(y))).toBe(Math.sign(Math.floor(a.getTime() / 1000) - Math.floor(b.getTime() / 1000)));
      }),
    );
  });
});

describe('file names', () => {
  it('keeps plain names and encodes the rest reversibly', () => {
    expect(dumpFileName('app')).toBe('app.dump');
    expect(dumpFileName('my db')).toBe('my%20db.dump');
    expect(dumpFileName('../etc')).toBe('%2E.%2Fetc.dump');
    expect(dumpFileName('Zürich')).toBe('Z%C3%BCrich.dump');
    expect(tarballFileName('uploads', 'gzip')).toBe('uploads.tar.gz');
    expect(tarballFileName('uploads', 'zstd')).toBe('uploads.tar.zst');
  });

  it('is safe, injective and reversible for any name (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 63, unit: 'grapheme' }), (name) => {
        const safe = fileSafe(name);
        expect(safe).toMatch(/^[A-Za-z0-9_%-][A-Za-z0-9_.%-]*$/);
        expect(decodeURIComponent(safe)).toBe(name);
      }),
      { numRuns: 1000 },
    );
  });
});
