import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LagTracker } from '../src/wal/lag.ts';

const S = 1000;

describe('WAL lag (pure)', () => {
  it('caught up: no bytes, no seconds, whatever the server did before', () => {
    const t = new LagTracker();
    expect(t.observe(0, 100n, 100n)).toEqual({ bytes: 0, seconds: 0 });
    expect(t.observe(10 * S, 500n, 500n)).toEqual({ bytes: 0, seconds: 0 });
    // pg_receivewal's position can run ahead of the sample taken just before it.
    expect(t.observe(20 * S, 500n, 600n)).toEqual({ bytes: 0, seconds: 0 });
  });

  it('stuck: the bytes are the difference, the seconds count from when the server was first seen past the sidecar', () => {
    const t = new LagTracker();
    expect(t.observe(0, 100n, 100n)).toEqual({ bytes: 0, seconds: 0 });
    expect(t.observe(10 * S, 300n, 100n)).toEqual({ bytes: 200, seconds: 0 });
    expect(t.observe(20 * S, 700n, 100n)).toEqual({ bytes: 600, seconds: 10 });
    expect(t.observe(90 * S, 700n, 100n)).toEqual({ bytes: 600, seconds: 80 });
  });

  it('catching up: the lag dates from the first position the sidecar still lacks', () => {
    const t = new LagTracker();
    t.observe(0, 200n, 100n);
    t.observe(10 * S, 300n, 100n);
    t.observe(20 * S, 400n, 100n);
    // It has what the server had at 0 s, not what it had at 10 s.
    expect(t.observe(30 * S, 400n, 250n)).toEqual({ bytes: 150, seconds: 20 });
    expect(t.observe(40 * S, 400n, 400n)).toEqual({ bytes: 0, seconds: 0 });
  });

  it('reset forgets: a restarted stream starts counting again', () => {
    const t = new LagTracker();
    t.observe(0, 200n, 100n);
    t.reset();
    expect(t.observe(50 * S, 200n, 100n)).toEqual({ bytes: 100, seconds: 0 });
  });

  it('property: never negative; zero exactly when caught up; never more than the time since the first sample still ahead', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ step: fc.integer({ min: 0, max: 60 }), grow: fc.bigInt({ min: 0n, max: 1n << 30n }), take: fc.bigInt({ min: 0n, max: 1n << 30n }) }), { maxLength: 60 }), (steps) => {
        const t = new LagTracker();
        const seen: { at: number; lsn: bigint }[] = [];
        let at = 0;
        let server = 0n;
        let written = 0n;
        for (const s of steps) {
          at += s.step * S;
          server += s.grow;
          written = written + s.take > server ? server : written + s.take;
          seen.push({ at, lsn: server });
          const lag = t.observe(at, server, written);
          expect(lag.bytes).toBe(Number(server - written));
          expect(lag.seconds).toBeGreaterThanOrEqual(0);
          if (written >= server) expect(lag.seconds).toBe(0);
          const firstAhead = seen.find((x) => x.lsn > written);
          expect(lag.seconds).toBe(firstAhead === undefined ? 0 : Math.round((at - firstAhead.at) / S));
        }
      }),
    );
  });
});
