import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { appointments } from '../lib/appointments';
import { doctors, specialtiesText } from '../lib/doctors';
import { languageCode, languagesText, type Language } from '../lib/languages';
import { SlotNotice, SlotPicker, useLiveSlots, useSlotChoice, withChoice } from '../lib/SlotPicker';
import { addDays, dayKey, formatDay, formatTime, viewerZone } from '../lib/time';
import type { Appointment, Slot } from '../lib/types';
import { Empty, ErrorMsg, Loading, SpecialtyInput, useAction, useLoad, useSession } from '../lib/ui';

export function Directory() {
  const [specialty, setSpecialty] = useState('');
  const [q, setQ] = useState('');
  const [language, setLanguage] = useState('');
  const [languageError, setLanguageError] = useState<string | null>(null);
  const [query, setQuery] = useState<{ specialty: string; q: string; language?: Language }>({ specialty: '', q: '' });
  const { data, error, loading } = useLoad(() => {
    return doctors.search({ specialty: query.specialty || undefined, q: query.q || undefined, language: query.language });
  }, [query.specialty, query.q, query.language]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const code = language.trim() ? languageCode(language) : undefined;
    if (code === null) {
      setLanguageError(`“${language.trim()}” is not a language we know: use its name (e.g. German) or its two-letter code (e.g. de).`);
      return;
    }
    setLanguageError(null);
    setQuery({ specialty: specialty.trim().toLowerCase().replace(/\s+/g, '-'), q: q.trim(), language: code });
  };
  return (
    <section>
      <h1>Find a doctor</h1>
      <form className="row" onSubmit={submit} role="search">
        <label>
          Name
          <input value={q} onChange={(e) => setQ(e.target.value)} placeholder="e.g. Novák" />
        </label>
        <SpecialtyInput value={specialty} onChange={setSpecialty} />
        <label>
          Language
          <input value={language} onChange={(e) => setLanguage(e.target.value)} placeholder="e.g. German" />
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorMsg error={languageError} />
      {loading && <Loading />}
      <ErrorMsg error={error} />
      {data && data.doctors.length === 0 && (
        <Empty>{query.q || query.specialty || query.language ? 'No doctor matches. Try another name, specialty or language.' : 'No doctors are listed yet.'}</Empty>
      )}
      {data && data.doctors.length > 0 && (
        <ul className="cards" aria-label="Doctors">
          {data.doctors.map((d) => (
            <li key={d.id} className="card" data-testid="doctor-card">
              <h2>
                <Link to={`/doctors/${d.id}`}>{d.display_name}</Link>
              </h2>
              <p className="muted">{specialtiesText(d.specialties)}</p>
              {d.languages.length > 0 && <p className="small">Speaks {languagesText(d.languages)}</p>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function DoctorPage() {
  const { id = '' } = useParams();
  const { user } = useSession();
  const nav = useNavigate();
  const zone = viewerZone();
  const [from] = useState(() => new Date(Date.now() + 3600_000).toISOString());
  const [to] = useState(() => addDays(from, 7));
  const doctor = useLoad(() => doctors.get(id), [id]);
  // Live: a time booked or freed by anyone shows here without a reload.
  const slots = useLiveSlots(id, from, to);
  const choice = useSlotChoice(slots.slots);
  const [reason, setReason] = useState('');
  const [busy, error, run, setError] = useAction();
  if (doctor.loading) return <Loading />;
  if (doctor.error || !doctor.data) return <ErrorMsg error={doctor.error ?? 'Not found'} />;
  const d = doctor.data;
  const free = slots.slots ?? [];
  const byDay = new Map<string, Slot[]>();
  for (const s of free) {
    const k = dayKey(s.start, zone);
    byDay.set(k, [...(byDay.get(k) ?? []), s]);
  }
  const instant = d.auto_accept && user?.role === 'patient';
  const book = async (e: FormEvent) => {
    e.preventDefault();
    const slot = choice.chosen;
    if (!slot) return setError('Choose a time.');
    if (!reason.trim()) return setError('Tell the doctor briefly why you come.');
    let created: Appointment | null = null;
    // Taken meanwhile (or the hours changed): the picker shows what is free now, at once.
    const { ok } = await withChoice(choice, slots.refresh, run, async () => {
      created = await appointments.book({ doctor_id: d.id, start: slot.start, reason: reason.trim() });
    });
    if (ok && created) nav(`/appointments/${(created as Appointment).id}`);
  };
  return (
    <section>
      <h1>{d.display_name}</h1>
      <p className="muted" data-testid="doctor-specialties">{specialtiesText(d.specialties)}</p>
      {d.languages.length > 0 && <p data-testid="doctor-languages">Speaks {languagesText(d.languages)}</p>}
      {d.bio && <p>{d.bio}</p>}
      <p className="small">
        Works in {d.time_zone}; times below are in your zone, <strong>{zone}</strong>.
      </p>
      {user?.role === 'patient' && (
        <p>
          <Link to={`/book?doctor=${d.id}`}>Request an appointment with {d.display_name}</Link>
        </p>
      )}
      <h2>Free times this week</h2>
      {slots.loading && !slots.slots && <Loading what="Loading free times" />}
      <ErrorMsg error={slots.error} />
      {instant && <SlotNotice notice={choice.notice} />}
      {slots.slots && free.length === 0 && <Empty>No free times in the next seven days.</Empty>}
      {instant && free.length > 0 ? (
        <form onSubmit={book}>
          <SlotPicker
            slots={free}
            zone={zone}
            name="slot"
            legend={`Book instantly: choose a time (${zone})`}
            value={choice.chosen?.start ?? null}
            onChange={choice.choose}
            days={Array.from({ length: 7 }, (_, i) => dayKey(addDays(from, i), zone))}
          />
          <label>
            Reason
            <textarea value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} rows={2} />
          </label>
          <ErrorMsg error={error} />
          <button type="submit" disabled={busy}>
            {busy ? 'Booking…' : 'Book this time'}
          </button>
        </form>
      ) : free.length > 0 && (
        <ul className="slot-summary" aria-label="Free times">
          {[...byDay.entries()].map(([day, list]) => (
            <li key={day}>
              <strong>{formatDay(list[0].start, zone)}</strong>:{' '}
              <span data-testid="slot-range">
                {formatTime(list[0].start, zone)}–{formatTime(list[list.length - 1].end, zone)} ({zone})
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
