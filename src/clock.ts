import type { Config } from './config/config.ts';

/** The latest time a run may be dated and still be trusted: now plus CLOCK_SKEW_MAX. */
export function notAfterOf(config: Pick<Config, 'fakeNow' | 'clockSkewMs'>): Date {
  return new Date(clockOf(config)().getTime() + config.clockSkewMs);
}

/** The clock of the core: real time, or (BACKUP_FAKE_NOW, tests only) a fake start that runs on from there. */
export function clockOf(config: Pick<Config, 'fakeNow'>): () => Date {
  const fake = config.fakeNow;
  if (fake === undefined) return () => new Date();
  const began = Date.now();
  return () => new Date(fake.getTime() + (Date.now() - began));
}
