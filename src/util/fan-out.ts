import { once } from 'node:events';
import { Writable, type WritableOptions } from 'node:stream';
import { finished } from 'node:stream/promises';

/**
 * Writes every chunk to a primary stream (the volume file) and, while it keeps up, a secondary one (the
 * offsite upload), respecting the backpressure of both: the artifact is produced once and never re-read.
 * A failing secondary is dropped and the primary goes on; a failing primary fails the whole write.
 * Ending ends only the primary: the owner ends the secondary once it knows the producer succeeded, so
 * that an upload never completes with the truncated output of a producer that died.
 */
export class FanOut extends Writable {
  private readonly primary: Writable;
  private secondary: Writable | undefined;
  private dropped: (() => void) | undefined;
  /** Why the secondary was dropped, if it was. */
  secondaryError: Error | undefined;

  constructor(primary: Writable, secondary: Writable | undefined, options?: WritableOptions) {
    super(options);
    this.primary = primary;
    this.secondary = secondary;
    primary.on('error', (error) => this.destroy(error));
    secondary?.on('error', (error) => this.drop(error));
  }

  /** Stops feeding the secondary; a write waiting for its drain goes on. */
  drop(error: Error): void {
    if (this.secondary === undefined) return;
    this.secondaryError ??= error;
    this.secondary = undefined;
    this.dropped?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits: Promise<unknown>[] = [];
    if (!this.primary.write(chunk)) waits.push(once(this.primary, 'drain'));
    const secondary = this.secondary;
    if (secondary !== undefined && !secondary.write(chunk)) {
      waits.push(
        new Promise<void>((resolve) => {
          const done = () => {
            secondary.off('drain', done);
            this.dropped = undefined;
            resolve();
          };
          secondary.on('drain', done);
          this.dropped = done;
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
