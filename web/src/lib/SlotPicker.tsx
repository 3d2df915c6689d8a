import { useState } from 'react';
import { dayKey, formatDay, formatLongDay, formatTime, slotName } from './time';
import type { Slot } from './types';

/**
 * Free times as a week: one column per day, a radio per time. Every radio is named by its
 * weekday, date and time ("Tuesday 8 December 2026, 09:30"), not by the time alone. On a narrow
 * screen one day shows at a time, with previous and next day buttons (hidden, and so out of the
 * tab order, on wide screens).
 */
export function SlotPicker({
  slots,
  zone,
  name,
  legend,
  value,
  onChange,
  days,
}: {
  slots: Slot[];
  zone: string;
  /** The radios' name: unique per picker on a page. */
  name: string;
  legend: string;
  value: string | null;
  onChange: (s: Slot) => void;
  /** Day keys (YYYY-MM-DD in `zone`) to show as columns, also when free; default: days with slots. */
  days?: string[];
}) {
  const byDay = new Map<string, Slot[]>((days ?? []).map((d) => [d, []]));
  for (const s of slots) {
    const k = dayKey(s.start, zone);
    if (!byDay.has(k)) byDay.set(k, []);
    byDay.get(k)!.push(s);
  }
  const columns = [...byDay.entries()].sort(([a], [b]) => a.localeCompare(b));
  const firstWithSlots = Math.max(0, columns.findIndex(([, l]) => l.length > 0));
  const [picked, setPicked] = useState<number | null>(null);
  const current = Math.min(picked ?? firstWithSlots, Math.max(0, columns.length - 1));
  const dayTitle = (key: string) => formatLongDay(`${key}T12:00:00Z`, 'UTC');
  return (
    <fieldset className="slots">
      <legend>{legend}</legend>
      <div className="day-nav">
        <button type="button" className="secondary" disabled={current <= 0} onClick={() => setPicked(current - 1)}>
          Previous day
        </button>
        <span aria-live="polite" className="day-nav-title">
          {columns[current] ? dayTitle(columns[current][0]) : ''}
        </span>
        <button type="button" className="secondary" disabled={current >= columns.length - 1} onClick={() => setPicked(current + 1)}>
          Next day
        </button>
      </div>
      <div className="slot-week">
        {columns.map(([day, list], i) => (
          <div key={day} className={`slot-day ${i === current ? 'current' : ''}`} data-testid="slot-day">
            <h3 className="h3">
              <span className="sr-only">{dayTitle(day)}</span>
              <span aria-hidden="true">{formatDay(`${day}T12:00:00Z`, 'UTC')}</span>
            </h3>
            {list.length === 0 && <p className="muted small">No free times</p>}
            <div className="slot-list">
              {list.map((s) => (
                <label key={s.start} className={`slot ${value === s.start ? 'chosen' : ''}`}>
                  <input type="radio" name={name} value={s.start} checked={value === s.start} onChange={() => onChange(s)} aria-label={slotName(s.start, zone)} />
                  <span data-slot={s.start}>{formatTime(s.start, zone)}</span>
                </label>
              ))}
            </div>
          </div>
        ))}
      </div>
    </fieldset>
  );
}
