import { once } from 'node:events';
import { Writable, type WritableOptions } from 'node:stream';
import { finished } from 'node:stream/promises';

/**
 * Writes every chunk to a primary stream (the volume file) and, while they keep up, to secondary ones
 * (one upload per remote target), respecting the backpressure of all: the artifact is produced once and
 * never re-read. A failing secondary is dropped on its own and the others go on; a failing primary fails
 * the whole write. Ending ends only the primary: the owner ends each secondary once it knows the
 * producer succeeded, so that an upload never completes with the truncated output of a producer that died.
 */
export class FanOut extends Writable {
  private readonly primary: Writable;
  private readonly secondaries: Set<Writable>;
  /** A write waiting for a secondary's drain, by secondary: dropping it releases the wait. */
  private readonly waiting = new Map<Writable, () => void>();
  /** Why each dropped secondary was dropped. */
  readonly secondaryErrors = new Map<Writable, Error>();

  constructor(primary: Writable, secondaries: Writable[], options?: WritableOptions) {
    super(options);
    this.primary = primary;
    this.secondaries = new Set(secondaries);
    primary.on('error', (error) => this.destroy(error));
    for (const s of secondaries) s.on('error', (error) => this.drop(s, error));
  }

  /** Stops feeding one secondary; a write waiting for its drain goes on. */
  drop(secondary: Writable, error: Error): void {
    if (!this.secondaries.delete(secondary)) return;
    this.secondaryErrors.set(secondary, error);
    this.waiting.get(secondary)?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits: Promise<unknown>[] = [];
    if (!this.primary.write(chunk)) waits.push(once(this.primary, 'drain'));
    for (const secondary of this.secondaries) {
      if (secondary.write(chunk)) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const done = () => {
            secondary.off('drain', done);
            this.waiting.delete(secondary);
            resolve();
          };
          secondary.on('drain', done);
          this.waiting.set(secondary, done);
        }),
      );
    }
    if (waits.length === 0) callback();
    else Promise.all(waits).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.primary.end();
    finished(this.primary).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.primary.destroy();
    callback(error);
  }
}
