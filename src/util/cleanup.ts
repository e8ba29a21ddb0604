import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { describe } from '../errors.ts';

/**
 * Undo actions registered as resources are made (a partial folder, a temporary database) and run in
 * reverse order when the work ends, whatever happened. A failing action is logged, never hides the
 * error that caused the cleanup, and never stops the other actions.
 */
export class Cleanup {
  private readonly actions: { what: string; run: () => Promise<void> }[] = [];

  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Registers an action; the returned function drops it (when the resource was kept on purpose). */
  add(what: string, run: () => Promise<void>): () => void {
    const action = { what, run };
    this.actions.push(action);
    return () => {
      const i = this.actions.indexOf(action);
      if (i >= 0) this.actions.splice(i, 1);
    };
  }

  /** Makes a private folder `<prefix>-<random>` below `parent` and registers its removal. */
  async folder(parent: string, prefix: string, what: string): Promise<string> {
    const dir = join(parent, `${prefix}-${randomBytes(4).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.add(`remove ${what} ${dir}`, () => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async runAll(): Promise<void> {
    while (this.actions.length > 0) {
      const action = this.actions.pop()!;
      try {
        await action.run();
      } catch (error) {
        this.log.error({ err: describe(error) }, `cleanup failed: ${action.what}`);
      }
    }
  }
}

/** Runs `work` with a fresh Cleanup and always runs the cleanup afterwards. */
export async function withCleanup<T>(log: Logger, work: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = new Cleanup(log);
  try {
    return await work(cleanup);
  } finally {
    await cleanup.runAll();
  }
}
