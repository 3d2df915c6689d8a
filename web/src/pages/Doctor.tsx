import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { appointments } from '../lib/appointments';
import { asTimeZone, doctors, WEEKDAYS, type AvailabilityView, type Weekday } from '../lib/doctors';
import { SlotNotice, SlotPicker, useLiveSlots, useSlotChoice, withChoice } from '../lib/SlotPicker';
import { addDays, dayKey, formatDay, formatTime, formatWithZone, viewerZone, wallToIso } from '../lib/time';
import { ApiError, type Schema } from '../lib/api';
import type { AffectedAppointment, Appointment } from '../lib/types';
import { AffectedAppointments, appointmentCount, Empty, ErrorMsg, Loading, Saved, StatusBadge, useAction, useFrames, useLoad, useSession } from '../lib/ui';
import { when } from './Appointments';

type OfferItem = Schema<'OfferWithAppointment'>;

function OfferCard({ item, onDone }: { item: OfferItem; onDone: () => void }) {
  const { user } = useSession();
  const { appointment: a, offer } = item;
  const zone = viewerZone();
  // Live: a time the doctor gives away elsewhere (another offer, a move) leaves this picker.
  const slots = useLiveSlots(user?.id, a.window_start, a.window_end);
  const choice = useSlotChoice(slots.slots);
  const [reason, setReason] = useState('');
  const [busy, error, run, setError] = useAction();
  const accept = async (e: FormEvent) => {
    e.preventDefault();
    const slot = choice.chosen;
    if (!slot) return setError('Choose a free time.');
    const { ok } = await withChoice(choice, slots.refresh, run, () => appointments.accept(a.id, slot.start));
    if (ok) onDone();
  };
  const decline = async () => {
    if (!reason.trim()) return setError('Give a reason to decline.');
    if (await run(() => appointments.decline(a.id, reason.trim()))) onDone();
  };
  return (
    <li className="card" data-testid="offer">
      <h2 className="h3">{a.reason}</h2>
      <p className="small" data-testid="offer-patient">From {a.patient_name ?? 'a patient'}</p>
      <p className="small">Wanted {when(a, zone)}</p>
      <p className="small muted">Answer by {formatWithZone(offer.deadline, zone)}</p>
      <form onSubmit={accept}>
        {slots.loading && !slots.slots && <Loading what="Loading your free times" />}
        <SlotNotice notice={choice.notice} />
        {slots.slots && slots.slots.length === 0 && <Empty>You have no free time in the wanted window: decline, or free some time first.</Empty>}
        {slots.slots && slots.slots.length > 0 && (
          <SlotPicker slots={slots.slots} zone={zone} name={`slot-${offer.id}`} legend={`Free time (${zone})`} value={choice.chosen?.start ?? null} onChange={choice.choose} />
        )}
        <button disabled={busy}>Accept</button>
      </form>
      <div className="row">
        <label className="grow">
          Reason to decline
          <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} />
        </label>
        <button className="secondary" disabled={busy} onClick={decline}>
          Decline
        </button>
      </div>
      <ErrorMsg error={error ?? slots.error} />
    </li>
  );
}

/** An approved doctor without specialties is hard to find: say where to add them. */
function NoSpecialtyHint() {
  const { data } = useLoad(() => doctors.myProfile(), []);
  if (!data || data.specialties.length > 0) return null;
  return (
    <p className="notice">
      Patients see you without a specialty. <Link to="/profile">Add your specialties and a short bio</Link> so they can find you.
    </p>
  );
}

export function Offers() {
  const { data, error, loading, reload } = useLoad(() => appointments.offers(), []);
  useFrames(['notification'], reload);
  const pending = data?.offers.filter((o) => o.offer.status === 'pending') ?? [];
  return (
    <section>
      <h1>Incoming offers</h1>
      <NoSpecialtyHint />
      <p className="small muted">New offers appear here as they arrive.</p>
      {loading && !data && <Loading />}
      <ErrorMsg error={error} />
      {data && pending.length === 0 && <Empty>No offers waiting for you.</Empty>}
      <ul className="cards" aria-label="Offers">
        {pending.map((o) => (
          <OfferCard key={o.offer.id} item={o} onDone={reload} />
        ))}
      </ul>
    </section>
  );
}

export function Schedule() {
  const zone = viewerZone();
  const [mode, setMode] = useState<'day' | 'week'>('week');
  const [day, setDay] = useState(() => new Date().toISOString());
  const { data, error, loading } = useLoad(() => appointments.confirmed(), []);
  const days = Array.from({ length: mode === 'day' ? 1 : 7 }, (_, i) => dayKey(addDays(day, i), zone));
  const byDay = new Map<string, Appointment[]>(days.map((d) => [d, []]));
  for (const a of data?.appointments ?? []) if (a.start) byDay.get(dayKey(a.start, zone))?.push(a);
  return (
    <section>
      <h1>Schedule</h1>
      <div className="row">
        <button className="secondary" onClick={() => setDay(addDays(day, mode === 'day' ? -1 : -7))}>
          Previous
        </button>
        <button className="secondary" onClick={() => setDay(new Date().toISOString())}>
          Today
        </button>
        <button className="secondary" onClick={() => setDay(addDays(day, mode === 'day' ? 1 : 7))}>
          Next
        </button>
        <label className="inline-field">
          View
          <select value={mode} onChange={(e) => setMode(e.target.value as 'day' | 'week')}>
            <option value="day">day</option>
            <option value="week">week</option>
          </select>
        </label>
      </div>
      <p className="small">Times in {zone}.</p>
      {loading && <Loading />}
      <ErrorMsg error={error} />
      {data && [...byDay.values()].every((l) => l.length === 0) && (
        <Empty>{mode === 'day' ? 'No confirmed appointments on this day.' : 'No confirmed appointments in these seven days.'}</Empty>
      )}
      <div className={`week week-${mode}`}>
        {[...byDay.entries()].map(([d, list]) => (
          <div key={d} className="day">
            <h2 className="h3">{formatDay(`${d}T12:00:00Z`, 'UTC')}</h2>
            {list.length === 0 && <p className="muted small">Free</p>}
            <ul>
              {list
                .sort((x, y) => (x.start ?? '').localeCompare(y.start ?? ''))
                .map((a) => (
                  <li key={a.id}>
                    <Link to={`/appointments/${a.id}`}>
                      {formatTime(a.start!, zone)}–{formatTime(a.end!, zone)} {a.patient_name ?? 'a patient'}: {a.reason}
                    </Link>
                  </li>
                ))}
            </ul>
          </div>
        ))}
      </div>
    </section>
  );
}

export function Availability() {
  const { data, error, loading, reload } = useLoad(() => doctors.availability(), []);
  // Lives here, not in the form: the form starts afresh from each saved version.
  const [saved, setSaved] = useState<string | null>(null);
  if (loading && !data) return <Loading />;
  if (!data) return <ErrorMsg error={error} />;
  return (
    <AvailabilityForm
      key={data.version}
      view={data}
      saved={saved}
      onSaved={(what) => {
        setSaved(what);
        reload();
      }}
    />
  );
}

function AvailabilityForm({
  view,
  saved,
  onSaved,
}: {
  view: AvailabilityView;
  saved: string | null;
  onSaved: (what: string | null) => void;
}) {
  const [zone, setZone] = useState(view.time_zone);
  const [weekly, setWeekly] = useState(view.weekly);
  const [slot, setSlot] = useState(view.slot_minutes);
  const [auto, setAuto] = useState(view.auto_accept);
  const [busy, error, run, setError] = useAction({
    conflict: 'Changed elsewhere: reload to see the latest.',
    validation_failed:
      'The time zone or the hours are not accepted: use a time zone such as Europe/Berlin, and hours that end after they start and do not overlap.',
    appointments_affected:
      'This time off overlaps confirmed appointments. Take it anyway to cancel them (each patient is told your reason), or choose other times.',
  });
  const [off, setOff] = useState({ start: '', end: '', reason: '' });
  /** Time off refused over confirmed appointments: those, to cancel with it or not. */
  const [clash, setClash] = useState<{ start: string; end: string; reason: string; appointments: AffectedAppointment[] } | null>(null);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    onSaved(null);
    for (const w of weekly) if (!(w.start < w.end)) return setError(`${w.weekday}: the end must be after the start.`);
    if (slot % 5 || slot < 5 || slot > 240) return setError('Slot length: a multiple of 5 between 5 and 240 minutes.');
    if (await run(() => doctors.saveAvailability({ expected_version: view.version, time_zone: asTimeZone(zone), weekly, slot_minutes: slot, auto_accept: auto }))) onSaved('Availability saved.');
  };
  const addOff = async (e: FormEvent) => {
    e.preventDefault();
    if (!off.start || !off.end || !off.reason.trim()) return setError('Time off needs a start, an end and a reason.');
    const start = wallToIso(off.start, zone);
    const end = wallToIso(off.end, zone);
    if (end <= start) return setError('Time off must end after it starts.');
    setClash(null);
    let overlapping: AffectedAppointment[] = [];
    const ok = await run(async () => {
      try {
        await doctors.addTimeOff({ start, end, reason: off.reason.trim(), force: false });
      } catch (e) {
        // The 409 lists the confirmed appointments it would cancel, as data.
        if (e instanceof ApiError && e.code === 'appointments_affected') overlapping = e.details?.appointments ?? [];
        throw e;
      }
    });
    if (ok) onSaved('Time off added.');
    else if (overlapping.length) setClash({ start, end, reason: off.reason.trim(), appointments: overlapping });
  };
  const forceOff = async () => {
    if (!clash) return;
    const n = clash.appointments.length;
    if (await run(() => doctors.addTimeOff({ start: clash.start, end: clash.end, reason: clash.reason, force: true }))) {
      setClash(null);
      onSaved(`Time off added; ${appointmentCount(n)} cancelled.`);
    }
  };
  return (
    <section>
      <h1>Availability</h1>
      <form onSubmit={save}>
        <label>
          Time zone (your hours are in this zone)
          <input value={zone} onChange={(e) => setZone(e.target.value)} />
        </label>
        <fieldset>
          <legend>Weekly hours ({zone})</legend>
          {weekly.length === 0 && <p className="muted">No hours yet.</p>}
          {weekly.map((w, i) => (
            <div className="row" key={i}>
              <label>
                Day
                <select value={w.weekday} onChange={(e) => setWeekly(weekly.map((x, j) => (j === i ? { ...x, weekday: e.target.value as Weekday } : x)))}>
                  {WEEKDAYS.map((d) => (
                    <option key={d}>{d}</option>
                  ))}
                </select>
              </label>
              <label>
                From
                <input type="time" value={w.start} onChange={(e) => setWeekly(weekly.map((x, j) => (j === i ? { ...x, start: e.target.value } : x)))} />
              </label>
              <label>
                To
                <input type="time" value={w.end} onChange={(e) => setWeekly(weekly.map((x, j) => (j === i ? { ...x, end: e.target.value } : x)))} />
              </label>
              <button type="button" className="link" onClick={() => setWeekly(weekly.filter((_, j) => j !== i))}>
                Remove {w.weekday} {w.start}
              </button>
            </div>
          ))}
          <button type="button" className="secondary" onClick={() => setWeekly([...weekly, { weekday: 'monday', start: '09:00', end: '17:00' }])}>
            Add hours
          </button>
        </fieldset>
        <label>
          Slot length (minutes)
          <input type="number" min={5} max={240} step={5} value={slot} onChange={(e) => setSlot(Number(e.target.value))} />
        </label>
        <label className="inline">
          <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.target.checked)} /> Patients may book free slots instantly
        </label>
        <ErrorMsg error={error} />
        <Saved show={!!saved && !busy}>{saved}</Saved>
        <button disabled={busy}>Save availability</button>
      </form>
      <h2>Time off</h2>
      {view.time_off.length === 0 && <Empty>No time off planned.</Empty>}
      <ul>
        {view.time_off.map((t) => (
          <li key={t.id}>
            {formatWithZone(t.start, zone)} – {formatWithZone(t.end, zone)}: {t.reason}{' '}
            <button className="link" onClick={() => run(() => doctors.removeTimeOff(t.id)).then((ok) => ok && onSaved('Time off removed.'))}>
              Remove<span className="sr-only"> time off from {formatWithZone(t.start, zone)}</span>
            </button>
          </li>
        ))}
      </ul>
      <form onSubmit={addOff} className="row">
        <label>
          From ({zone})
          <input type="datetime-local" value={off.start} onChange={(e) => setOff({ ...off, start: e.target.value })} />
        </label>
        <label>
          To ({zone})
          <input type="datetime-local" value={off.end} onChange={(e) => setOff({ ...off, end: e.target.value })} />
        </label>
        <label>
          Reason
          <input value={off.reason} onChange={(e) => setOff({ ...off, reason: e.target.value })} maxLength={500} />
        </label>
        <button disabled={busy}>Add time off</button>
      </form>
      {clash && (
        <AffectedAppointments
          testId="time-off-clash"
          heading={<h3>Appointments in this time off</h3>}
          appointments={clash.appointments}
          busy={busy}
          confirm="Take the time off and cancel"
          onConfirm={forceOff}
          keep="Keep the appointments"
          onKeep={() => {
            setClash(null);
            setError(null);
          }}
        />
      )}
    </section>
  );
}

export { StatusBadge };
