import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Cleanup, withCleanup } from '../src/util/cleanup.ts';

const log = pino({ level: 'silent' });

describe('Cleanup', () => {
  it('runs every action in reverse order, whatever happened, and keeps the original error', async () => {
    const ran: string[] = [];
    await expect(
      withCleanup(log, async (cleanup) => {
        cleanup.add('first', async () => void ran.push('first'));
        cleanup.add('second', async () => void ran.push('second'));
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect(ran).toEqual(['second', 'first']);
  });

  it('an action taken back (the resource was kept) does not run; a failing action does not stop the others', async () => {
    const ran: string[] = [];
    const cleanup = new Cleanup(log);
    cleanup.add('a', async () => void ran.push('a'));
    const keep = cleanup.add('b', async () => void ran.push('b'));
    cleanup.add('c', async () => {
      throw new Error('cannot');
    });
    keep();
    await cleanup.runAll();
    expect(ran).toEqual(['a']);
  });

  it('returns the work result and leaves nothing to run twice', async () => {
    const cleanup = new Cleanup(log);
    let n = 0;
    cleanup.add('count', async () => void (n += 1));
    await cleanup.runAll();
    await cleanup.runAll();
    expect(n).toBe(1);
    expect(await withCleanup(log, async () => 42)).toBe(42);
  });
});
