/** Calendar periods of an instant in a time zone: pure, so tiers and retention agree on what "a day" is. */

export interface Periods {
  /** Days since 1970-01-01 of the local calendar date. */
  day: number;
  /** ISO weeks since the ISO week holding 1970-01-01 (a Thursday, so week 0 starts Monday 1969-12-29). */
  week: number;
  /** Months since January 1970. */
  month: number;
  year: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The local calendar date of `time` in `timeZone`. */
export function localDate(time: Date, timeZone: string): { year: number; month: number; day: number } {
  const parts = formatter(timeZone).formatToParts(time);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { year: get('year'), month: get('month'), day: get('day') };
}

export function periodsOf(time: Date, timeZone: string): Periods {
  const { year, month, day } = localDate(time, timeZone);
  const dayIndex = Math.round(Date.UTC(year, month - 1, day) / 86_400_000);
  // 1969-12-29 (day -3) is the Monday that starts the ISO week holding 1970-01-01.
  const week = Math.floor((dayIndex + 3) / 7);
  return { day: dayIndex, week, month: (year - 1970) * 12 + (month - 1), year };
}
