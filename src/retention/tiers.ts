import type { Tier } from '../naming.ts';
import { periodsOf } from './calendar.ts';

/**
 * The tier of a new run, decided when it is made: yearly for the first successful run of its calendar
 * year, else monthly for the first of its month, else weekly for the first of its ISO week, else daily.
 * `earlier` are the times of earlier successful runs (of any tier); failed runs never count.
 */
export function tierFor(time: Date, earlier: readonly Date[], timeZone: string): Tier {
  const now = periodsOf(time, timeZone);
  const before = earlier.filter((t) => t.getTime() < time.getTime()).map((t) => periodsOf(t, timeZone));
  if (!before.some((p) => p.year === now.year)) return 'yearly';
  if (!before.some((p) => p.month === now.month)) return 'monthly';
  if (!before.some((p) => p.week === now.week)) return 'weekly';
  return 'daily';
}
