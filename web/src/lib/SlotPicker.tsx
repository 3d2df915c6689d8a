import { useCallback, useEffect, useState } from 'react';
import { api, ApiError } from './api';
import { hasSlot, SlotWatches, TAKEN_NOTICE } from './slots';
import { dayKey, formatDay, formatLongDay, formatTime, slotName } from './time';
import type { Slot } from './types';
import { hub, useLoad } from './ui';

/** The socket's slot watches, shared by every picker on the page. */
const watches = new SlotWatches(hub);

/** How long a burst of `slots_changed` may last before the picker asks again. */
const REFRESH_DEBOUNCE_MS = 150;

/**
 * A doctor's free slots in `[from, to)` (null `doctorId`: none to show), kept fresh while the
 * caller is mounted: watched over the hub, asked again (debounced) on `slots_changed` and after
 * a reconnect, unwatched on unmount or when the range changes. `refresh` asks at once.
 */
export function useLiveSlots(doctorId: string | null | undefined, from: string, to: string) {
  const { data, error, loading, reload } = useLoad(
    () =>
      doctorId
        ? api.call((h) => h.GET('/api/doctors/{id}/slots', { params: { path: { id: doctorId }, query: { from, to } } }))
        : Promise.resolve({ slots: [] as Slot[] }),
    [doctorId, from, to],
  );
  useEffect(() => {
    if (!doctorId) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const stop = watches.watch(doctorId, from, to, () => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        reload();
      }, REFRESH_DEBOUNCE_MS);
    });
    return () => {
      stop();
      if (timer !== null) clearTimeout(timer);
    };
  }, [doctorId, from, to, reload]);
  return { slots: data?.slots ?? null, error, loading, refresh: reload };
}

/**
 * The time chosen in a picker. When fresh `slots` no longer hold it, it is deselected and
 * `notice` says so (never a silent change). `clear` deselects without a notice, for a screen
 * that already says why (a refused booking). `hold(true)` keeps the choice while it is being
 * booked: the booking's own push may come before its answer, and the time is then ours, not taken.
 */
export function useSlotChoice(slots: Slot[] | null) {
  const [chosen, setChosen] = useState<Slot | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [held, hold] = useState(false);
  // Only fresh slots (or a released hold) can take a choice away; a new choice is in them.
  const [seen, setSeen] = useState({ slots, held });
  if (seen.slots !== slots || seen.held !== held) {
    setSeen({ slots, held });
    if (!held && chosen && slots && !hasSlot(slots, chosen.start)) {
      setChosen(null);
      setNotice(TAKEN_NOTICE);
    }
  }
  const choose = useCallback((s: Slot) => {
    setChosen(s);
    setNotice(null);
  }, []);
  const clear = useCallback(() => {
    setChosen(null);
    setNotice(null);
  }, []);
  return { chosen, choose, clear, notice, hold };
}

/**
 * Runs a booking-like action `fn` with the chosen time held, and returns the error code it
 * failed with (null when it succeeded). Codes that mean "that time cannot be had" deselect it
 * without a notice, since the action's own error says so; every failure asks for the slots again.
 */
export async function withChoice(
  choice: ReturnType<typeof useSlotChoice>,
  refresh: () => void,
  run: (fn: () => Promise<unknown>) => Promise<boolean>,
  fn: () => Promise<unknown>,
): Promise<{ ok: boolean; code: string | null }> {
  let code: string | null = null;
  choice.hold(true);
  const ok = await run(async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof ApiError) code = e.code;
      throw e;
    }
  });
  if (ok) return { ok, code };
  if (code && GONE_CODES.has(code)) choice.clear();
  choice.hold(false);
  refresh();
  return { ok, code };
}

/** Refusals after which the chosen time is not to be had. */
const GONE_CODES = new Set(['slot_taken', 'patient_busy', 'off_slot_grid']);

/** The polite status line of a picker (always in the page, so screen readers hear changes). */
export function SlotNotice({ notice }: { notice: string | null }) {
  return (
    <p role="status" className="slot-notice" data-testid="slot-notice">
      {notice ?? ''}
    </p>
  );
}

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
