import { createInterface } from 'node:readline/promises';
import { UsageError } from '../errors.ts';

/**
 * Asks the person at the terminal to type `expected`. Without a terminal nobody can answer, so the
 * caller must have been given --yes; the refusal says how to do either.
 */
export async function confirm(what: string, expected: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new UsageError(
      `restore replaces ${what} and needs a confirmation: run it on a terminal (docker exec -it <container> restore ...) or add --yes`,
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`This replaces ${what}.\nType "${expected}" to go on: `);
    if (answer.trim() !== expected) throw new UsageError('restore cancelled: the answer did not match');
  } finally {
    rl.close();
  }
}
