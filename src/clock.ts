import type { Config } from './config/config.ts';

/** The clock of the core: real time, or (BACKUP_FAKE_NOW, tests only) a fake start that runs on from there. */
export function clockOf(config: Pick<Config, 'fakeNow'>): () => Date {
  const fake = config.fakeNow;
  if (fake === undefined) return () => new Date();
  const began = Date.now();
  return () => new Date(fake.getTime() + (Date.now() - began));
}
