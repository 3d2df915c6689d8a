import { describe, expect, it } from 'vitest';
import { dayKey, formatDay, formatRange, formatWithZone, isoToWall, wallToIso, zoneOffsetMinutes } from './time';

describe('time zones', () => {
  it('shows a Berlin morning slot in New York time, naming the zone', () => {
    // 09:00 in Berlin on a winter Monday is 08:00 UTC and 03:00 in New York.
    const slot = '2026-11-23T08:00:00Z';
    expect(formatWithZone(slot, 'America/New_York')).toBe('Mon, 23 Nov 2026, 03:00 (America/New_York)');
    expect(formatWithZone(slot, 'Europe/Berlin')).toBe('Mon, 23 Nov 2026, 09:00 (Europe/Berlin)');
  });

  it('formats a range with the end time only', () => {
    expect(formatRange('2026-11-23T08:00:00Z', '2026-11-23T08:30:00Z', 'Asia/Tokyo')).toBe('Mon, 23 Nov 2026, 17:00–17:30 (Asia/Tokyo)');
  });

  it('knows offsets on both sides of a DST change', () => {
    expect(zoneOffsetMinutes(new Date('2026-03-29T00:30:00Z'), 'Europe/Berlin')).toBe(60);
    expect(zoneOffsetMinutes(new Date('2026-03-29T01:30:00Z'), 'Europe/Berlin')).toBe(120);
    expect(zoneOffsetMinutes(new Date('2026-07-01T12:00:00Z'), 'America/New_York')).toBe(-240);
  });

  it('turns wall-clock input into UTC and back', () => {
    expect(wallToIso('2026-11-23T09:00', 'Europe/Berlin')).toBe('2026-11-23T08:00:00Z');
    expect(wallToIso('2026-07-01T09:00', 'Europe/Berlin')).toBe('2026-07-01T07:00:00Z');
    expect(isoToWall('2026-11-23T08:00:00Z', 'America/New_York')).toBe('2026-11-23T03:00');
    for (const zone of ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
      const iso = '2026-05-10T13:45:00Z';
      expect(wallToIso(isoToWall(iso, zone), zone)).toBe(iso);
    }
  });

  it('moves a time skipped by spring-forward past the gap and takes the first of a repeated hour', () => {
    // 02:30 does not exist in Berlin on 29 March 2026; 03:30 CEST (01:30Z) is the result.
    expect(wallToIso('2026-03-29T02:30', 'Europe/Berlin')).toBe('2026-03-29T01:30:00Z');
    // 02:30 happens twice on 25 October 2026; the earlier is 00:30Z (CEST).
    expect(wallToIso('2026-10-25T02:30', 'Europe/Berlin')).toBe('2026-10-25T00:30:00Z');
  });

  it('names the day in the viewer zone', () => {
    expect(formatDay('2026-11-23T03:00:00Z', 'America/New_York')).toBe('Sun 22 Nov');
  });

  it('puts an instant on the day of the viewer', () => {
    expect(dayKey('2026-11-23T03:00:00Z', 'America/New_York')).toBe('2026-11-22');
    expect(dayKey('2026-11-23T03:00:00Z', 'Europe/Berlin')).toBe('2026-11-23');
  });

  it('refuses input that is not a date and time', () => {
    expect(() => wallToIso('tomorrow', 'UTC')).toThrow(RangeError);
  });
});

describe('times in words', () => {
  it('names a free time by weekday, date and time', async () => {
    const { slotName } = await import('./time');
    expect(slotName('2026-12-08T08:30:00Z', 'Europe/Berlin')).toBe('Tuesday 8 December 2026, 09:30');
    expect(slotName('2026-12-08T03:30:00Z', 'America/New_York')).toBe('Monday 7 December 2026, 22:30');
  });

  it('rewrites UTC times in notification texts into the viewer’s zone', async () => {
    const { localizeUtcTimes } = await import('./time');
    expect(localizeUtcTimes('Your appointment with Dr. X is confirmed: Mon 2 Mar 2026 10:30 UTC.', 'Europe/Berlin')).toBe(
      'Your appointment with Dr. X is confirmed: Mon, 2 Mar 2026, 11:30 (Europe/Berlin).',
    );
    expect(localizeUtcTimes('New request for Mon 2 Mar 2026 09:00–12:00 UTC from Ada', 'America/New_York')).toBe(
      'New request for Mon, 2 Mar 2026, 04:00–07:00 (America/New_York) from Ada',
    );
    expect(localizeUtcTimes('Mon 2 Mar 2026 23:00 UTC – Tue 3 Mar 2026 12:00 UTC', 'Asia/Tokyo')).toBe(
      'Tue, 3 Mar 2026, 08:00 (Asia/Tokyo) – Tue, 3 Mar 2026, 21:00 (Asia/Tokyo)',
    );
    expect(localizeUtcTimes('No time here.', 'Europe/Berlin')).toBe('No time here.');
  });
});
