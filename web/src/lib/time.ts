// Times on the wire are RFC 3339 UTC; on screen they are in the viewer's time zone, named.

export function viewerZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** "Mon 24 Nov 2026, 10:00" in `zone`. */
export function formatDateTime(iso: string, zone: string = viewerZone(), locale = 'en-GB'): string {
  return new Intl.DateTimeFormat(locale, {
    timeZone: zone,
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(new Date(iso));
}

/** "Mon 24 Nov 2026, 10:00 (America/New_York)": a time with its zone named. */
export function formatWithZone(iso: string, zone: string = viewerZone()): string {
  return `${formatDateTime(iso, zone)} (${zone})`;
}

/** "Mon 23 Nov" in `zone`. */
export function formatDay(iso: string, zone: string = viewerZone()): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: zone, weekday: 'short', day: 'numeric', month: 'short' }).format(new Date(iso));
}

/** "10:00" in `zone`. */
export function formatTime(iso: string, zone: string = viewerZone()): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(
    new Date(iso),
  );
}

/** "10:00–10:30 (Europe/Berlin)". */
export function formatRange(startIso: string, endIso: string, zone: string = viewerZone()): string {
  return `${formatDateTime(startIso, zone)}–${formatTime(endIso, zone)} (${zone})`;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function partsIn(date: Date, zone: string): Parts {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const p: Record<string, number> = {};
  for (const { type, value } of f.formatToParts(date)) if (type !== 'literal') p[type] = Number(value);
  return { year: p.year, month: p.month, day: p.day, hour: p.hour % 24, minute: p.minute, second: p.second };
}

/** The zone's offset from UTC at `date`, in minutes (Berlin in winter: 60). */
export function zoneOffsetMinutes(date: Date, zone: string): number {
  const p = partsIn(date, zone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}

/** The date (YYYY-MM-DD) an instant falls on in `zone`. */
export function dayKey(iso: string, zone: string = viewerZone()): string {
  const p = partsIn(new Date(iso), zone);
  return `${p.year}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
}

/**
 * A wall-clock time in `zone` ("2026-03-29T02:30", as a datetime-local input gives it) as an
 * RFC 3339 UTC instant. A time skipped by a DST jump moves forward by the jump; an ambiguous one
 * takes the earlier instant.
 */
export function wallToIso(local: string, zone: string = viewerZone()): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
  if (!m) throw new RangeError(`not a date and time: ${local}`);
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0));
  // Try the offsets in force around the guess; keep the earliest instant that shows this wall time.
  const candidates = new Set<number>();
  for (const probe of [guess - 86400000, guess, guess + 86400000]) {
    candidates.add(guess - zoneOffsetMinutes(new Date(probe), zone) * 60000);
  }
  const exact = [...candidates].filter((t) => isoToWall(new Date(t).toISOString(), zone) === local.slice(0, 16)).sort((a, b) => a - b);
  // In a gap, the offset in force before the jump carries the time past it.
  const t = exact[0] ?? guess - zoneOffsetMinutes(new Date(guess - 86400000), zone) * 60000;
  return new Date(t).toISOString().replace('.000Z', 'Z');
}

/** An instant as the wall-clock "YYYY-MM-DDTHH:mm" of `zone` (for datetime-local inputs). */
export function isoToWall(iso: string, zone: string = viewerZone()): string {
  const p = partsIn(new Date(iso), zone);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}

/** Whole days from `iso`, in UTC: the start of a day list. */
export function addDays(iso: string, days: number): string {
  return new Date(new Date(iso).getTime() + days * 86400000).toISOString();
}

/** "Tuesday 8 December 2026" in `zone`: a day said in full, for headings and accessible names. */
export function formatLongDay(iso: string, zone: string = viewerZone()): string {
  const p = new Intl.DateTimeFormat('en-GB', { timeZone: zone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).formatToParts(
    new Date(iso),
  );
  const get = (t: string) => p.find((x) => x.type === t)?.value ?? '';
  return `${get('weekday')} ${get('day')} ${get('month')} ${get('year')}`;
}

/** "Tuesday 8 December 2026, 09:30" in `zone`: the accessible name of a free time. */
export function slotName(iso: string, zone: string = viewerZone()): string {
  return `${formatLongDay(iso, zone)}, ${formatTime(iso, zone)}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Notification texts are written by the server with times in UTC ("Mon 2 Mar 2026 10:30 UTC",
 * "Mon 2 Mar 2026 09:00–12:00 UTC"). This rewrites those times into `zone`, named, so a reader
 * never converts from UTC in their head. Text without such a time is returned unchanged.
 */
export function localizeUtcTimes(text: string, zone: string = viewerZone()): string {
  const re = /\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2})(?:[–-](\d{2}):(\d{2}))? UTC\b/g;
  return text.replace(re, (whole, d: string, mon: string, y: string, h: string, mi: string, h2?: string, mi2?: string) => {
    const month = MONTHS.indexOf(mon);
    const start = new Date(Date.UTC(+y, month, +d, +h, +mi));
    if (Number.isNaN(start.getTime())) return whole;
    const first = formatDateTime(start.toISOString(), zone);
    if (h2 === undefined || mi2 === undefined) return `${first} (${zone})`;
    let end = Date.UTC(+y, month, +d, +h2, +mi2);
    if (end <= start.getTime()) end += 86400000;
    return `${first}–${formatTime(new Date(end).toISOString(), zone)} (${zone})`;
  });
}
