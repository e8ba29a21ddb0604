/**
 * How far WAL streaming is behind the server, in bytes and in time (pure). The server says where its WAL
 * ends and where pg_receivewal has written up to; how old the oldest WAL the sidecar lacks is comes from
 * remembering when the server's end was first seen past the sidecar's position. Measured every round
 * (10 s), so the seconds are a lower bound, within one round of the truth.
 */
export interface WalLag {
  bytes: number;
  seconds: number;
}

interface Sample {
  at: number;
  lsn: bigint;
}

/** Samples kept at most: at one per 10 s, over five hours; past that the oldest one bounds the lag from below. */
const MAX_SAMPLES = 2000;

export class LagTracker {
  private samples: Sample[] = [];

  /** Records the server's end of WAL at `at` (ms) and returns the lag of `written` behind it. */
  observe(at: number, serverLsn: bigint, written: bigint): WalLag {
    this.samples.push({ at, lsn: serverLsn });
    // Positions the sidecar has reached are no longer needed; the first one past it dates the lag.
    const behind = this.samples.findIndex((s) => s.lsn > written);
    this.samples = behind === -1 ? [] : this.samples.slice(behind);
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(1, this.samples.length - MAX_SAMPLES);
    const first = this.samples[0];
    return { bytes: serverLsn > written ? Number(serverLsn - written) : 0, seconds: first === undefined ? 0 : Math.max(0, Math.round((at - first.at) / 1000)) };
  }

  /** Forgets what was seen (streaming restarted). */
  reset(): void {
    this.samples = [];
  }
}
