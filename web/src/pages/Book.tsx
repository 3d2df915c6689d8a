import { useState, type FormEvent } from 'react';
import { useNavigate, useSearchParams } from 'react-router-dom';
import { appointments, type Target } from '../lib/appointments';
import { doctors as directory, specialtiesText, specialtyLabel } from '../lib/doctors';
import { groups as groupsApi } from '../lib/groups';
import { addDays, isoToWall, viewerZone, wallToIso } from '../lib/time';
import type { Appointment, Group } from '../lib/types';
import { Empty, ErrorMsg, useAction, useLoad } from '../lib/ui';

type Kind = 'group' | 'specialty' | 'doctor';

export function BookRequest() {
  const [params] = useSearchParams();
  const nav = useNavigate();
  const zone = viewerZone();
  const [kind, setKind] = useState<Kind>(params.get('doctor') ? 'doctor' : 'group');
  const [target, setTarget] = useState(params.get('doctor') ?? '');
  // Tomorrow at this hour, as the page opened.
  const [tomorrow] = useState(() => {
    const t = new Date(Date.now() + 86400_000);
    t.setUTCMinutes(0, 0, 0);
    return t.toISOString();
  });
  const [start, setStart] = useState(isoToWall(tomorrow, zone));
  const [end, setEnd] = useState(isoToWall(addDays(tomorrow, 3), zone));
  const [reason, setReason] = useState('');
  const [busy, error, run, setError] = useAction();
  const groups = useLoad(() => groupsApi.list().catch(() => ({ groups: [] as Group[] })), []);
  const doctors = useLoad(() => directory.search({ limit: 100 }), []);
  const specialties = [...new Set((doctors.data?.doctors ?? []).flatMap((d) => d.specialties))].sort();
  const groupOptions: { id: string; label: string }[] = groups.data?.groups.length
    ? groups.data.groups.map((g) => ({ id: g.id, label: g.name }))
    : [];
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!target) return setError(`Choose a ${kind}.`);
    if (!start || !end) return setError('Give the earliest and latest time that suit you.');
    let ws: string, we: string;
    try {
      ws = wallToIso(start, zone);
      we = wallToIso(end, zone);
    } catch {
      return setError('The times are not valid.');
    }
    if (new Date(we) <= new Date(ws)) return setError('The latest time must be after the earliest.');
    if (new Date(ws) < new Date()) return setError('The earliest time must be in the future.');
    if (!reason.trim()) return setError('Tell the doctor briefly why you come.');
    let created: Appointment | null = null;
    const ok = await run(async () => {
      const to: Target = kind === 'group' ? { group: target } : kind === 'specialty' ? { specialty: target } : { doctor: target };
      created = await appointments.request({ target: to, window_start: ws, window_end: we, reason: reason.trim() });
    });
    if (ok && created) nav(`/appointments/${(created as Appointment).id}`);
  };
  return (
    <section className="narrow">
      <h1>Request an appointment</h1>
      <form onSubmit={submit} noValidate>
        <fieldset>
          <legend>Who should see you</legend>
          {(['group', 'specialty', 'doctor'] as Kind[]).map((k) => (
            <label key={k} className="inline">
              <input
                type="radio"
                name="kind"
                checked={kind === k}
                onChange={() => {
                  setKind(k);
                  setTarget('');
                }}
              />{' '}
              {k === 'group' ? 'a group' : k === 'specialty' ? 'any doctor of a specialty' : 'a doctor'}
            </label>
          ))}
        </fieldset>
        <label>
          {kind === 'group' ? 'Group' : kind === 'specialty' ? 'Specialty' : 'Doctor'}
          <select value={target} onChange={(e) => setTarget(e.target.value)} required>
            <option value="">Choose…</option>
            {kind === 'group' && groupOptions.map((g) => <option key={g.id} value={g.id}>{g.label}</option>)}
            {kind === 'specialty' && specialties.map((s) => <option key={s} value={s}>{specialtyLabel(s)}</option>)}
            {kind === 'doctor' &&
              doctors.data?.doctors.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.display_name} ({specialtiesText(d.specialties)})
                </option>
              ))}
          </select>
        </label>
        {kind === 'group' && groups.data && groupOptions.length === 0 && <Empty>No groups take requests yet: choose a specialty or a doctor.</Empty>}
        {kind === 'specialty' && doctors.data && specialties.length === 0 && <Empty>No doctor lists a specialty yet: choose a doctor.</Empty>}
        {kind === 'doctor' && doctors.data && doctors.data.doctors.length === 0 && <Empty>No doctors are listed yet.</Empty>}
        <div className="row">
          <label>
            Earliest ({zone})
            <input type="datetime-local" value={start} onChange={(e) => setStart(e.target.value)} required />
          </label>
          <label>
            Latest ({zone})
            <input type="datetime-local" value={end} onChange={(e) => setEnd(e.target.value)} required />
          </label>
        </div>
        <label>
          Reason
          <textarea value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} rows={3} required />
        </label>
        <ErrorMsg error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Sending…' : 'Send request'}
        </button>
      </form>
    </section>
  );
}
