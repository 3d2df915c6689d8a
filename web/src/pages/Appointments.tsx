import { Fragment, useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router-dom';
import { appointments, STATUSES } from '../lib/appointments';
import { bloodTypeLabel, patients, policyLine, policyTitle } from '../lib/patients';
import { formatRange, formatWithZone, isoToWall, viewerZone, wallToIso } from '../lib/time';
import type { Appointment, Status } from '../lib/types';
import { SlotNotice, SlotPicker, useLiveSlots, useSlotChoice, withChoice } from '../lib/SlotPicker';
import { Empty, ErrorMsg, Loading, Saved, StatusBadge, statusLabel, useAction, useFrames, useLoad, useSession } from '../lib/ui';
import { Chat } from './Chat';

export function when(a: Appointment, zone = viewerZone()): string {
  if (a.start && a.end) return formatRange(a.start, a.end, zone);
  return `between ${formatWithZone(a.window_start, zone)} and ${formatWithZone(a.window_end, zone)}`;
}

/** Who the appointment is with, as the viewer's role needs it: the doctor for a patient, the
 * patient for a doctor, both for an admin. Names come with the appointment. */
export function withWhom(a: Appointment, role: string | undefined): string {
  const doctor = a.doctor_id ? (a.doctor_name ?? 'a doctor') : null;
  const patient = a.patient_name ?? 'a patient';
  if (role === 'patient') return doctor ? `with ${doctor}` : '';
  if (role === 'doctor') return `with ${patient}`;
  return doctor ? `${patient} with ${doctor}` : patient;
}

export function Appointments() {
  const { user } = useSession();
  const [status, setStatus] = useState<Status | ''>('');
  const { data, error, loading, reload } = useLoad(
    () => appointments.list(status || undefined),
    [status],
  );
  useFrames(['notification'], reload);
  return (
    <section>
      <h1>Appointments</h1>
      <label className="inline-field">
        Status
        <select value={status} onChange={(e) => setStatus(e.target.value as Status | '')}>
          <option value="">all</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {statusLabel(s)}
            </option>
          ))}
        </select>
      </label>
      {loading && !data && <Loading />}
      <ErrorMsg error={error} />
      {data && data.appointments.length === 0 && (
        <Empty>
          {status
            ? `No ${statusLabel(status)} appointments.`
            : user?.role === 'patient'
              ? <>No appointments yet. <Link to="/book">Request one</Link> or <Link to="/doctors">find a doctor</Link>.</>
              : user?.role === 'doctor'
                ? 'No appointments yet. Accepted offers appear here.'
                : 'No appointments yet.'}
        </Empty>
      )}
      {data && data.appointments.length > 0 && <ul className="cards" aria-label="Appointments">
        {data.appointments.map((a) => (
          <li key={a.id} className="card">
            <Link to={`/appointments/${a.id}`}>
              <StatusBadge status={a.status} /> {a.reason}
            </Link>
            <p className="small">
              {when(a)} {withWhom(a, user?.role)}
            </p>
          </li>
        ))}
      </ul>}
    </section>
  );
}

export function AppointmentDetail() {
  const { id = '' } = useParams();
  const { user } = useSession();
  const { data, error, loading, reload } = useLoad(() => appointments.detail(id), [id]);
  useFrames(['notification'], (f) => f.notification?.appointment_id === id && reload());
  const [busy, actionError, run, setError] = useAction();
  const [reason, setReason] = useState('');
  const [notes, setNotes] = useState('');
  const zone = viewerZone();
  const [rs, setRs] = useState('');
  const [re, setRe] = useState('');
  const [done, setDone] = useState<string | null>(null);
  if (loading && !data) return <Loading />;
  if (!data) return <ErrorMsg error={error ?? 'Not found'} />;
  const a = data.appointment;
  const open = ['requested', 'offered', 'confirmed'].includes(a.status);
  /** Runs one change; when it is stored, says `done` and shows the stored state. */
  const act = (done: string, change: () => Promise<unknown>) =>
    run(change).then((ok) => {
      setDone(ok ? done : null);
      if (ok) reload();
    });
  const reschedule = (e: FormEvent) => {
    e.preventDefault();
    if (!rs || !re) return setError('Give a new earliest and latest time.');
    const ws = wallToIso(rs, zone);
    const we = wallToIso(re, zone);
    if (new Date(we) <= new Date(ws)) return setError('The latest time must be after the earliest.');
    void act('Reschedule asked for: the doctor will propose a time.', () => appointments.reschedule(id, ws, we));
  };
  return (
    <section>
      <h1>Appointment</h1>
      <p>
        Status: <StatusBadge status={a.status} testId="appointment-status" />
      </p>
      <dl className="facts">
        <dt>When</dt>
        <dd>{when(a, zone)}</dd>
        {user?.role !== 'patient' && (
          <>
            <dt>Patient</dt>
            <dd data-testid="appointment-patient">{a.patient_name ?? 'a patient'}</dd>
          </>
        )}
        {a.doctor_id && user?.role !== 'doctor' && (
          <>
            <dt>Doctor</dt>
            <dd data-testid="appointment-doctor">{a.doctor_name ?? 'a doctor'}</dd>
          </>
        )}
        <dt>Reason</dt>
        <dd>{a.reason}</dd>
        {a.specialty && (
          <>
            <dt>Specialty</dt>
            <dd>{a.specialty}</dd>
          </>
        )}
        {a.close_reason && (
          <>
            <dt>Closing note</dt>
            <dd>{a.close_reason}</dd>
          </>
        )}
      </dl>
      {a.last_call && (
        <p className="small">
          Last video call: {formatWithZone(a.last_call.started_at, zone)}, {Math.round(a.last_call.total_seconds / 60)} min
        </p>
      )}
      {user?.role === 'doctor' && a.status === 'confirmed' && <PatientDetails patientId={a.patient_id} />}
      {user?.role === 'doctor' && a.status === 'confirmed' && <PatientRecord patientId={a.patient_id} />}
      {a.pending_change && <PendingChange a={a} onDone={reload} />}
      {user?.role === 'doctor' && a.status === 'confirmed' && !a.pending_change && <ProposeTime key={a.version} a={a} onDone={reload} />}
      <h2>History</h2>
      <ol className="timeline">
        <li>Requested {formatWithZone(a.created_at, zone)}</li>
        {data.offers.map((o) => (
          <li key={o.id}>
            Offered to a doctor {formatWithZone(o.created_at, zone)}: {o.status.replace('_', ' ')}
            {o.decided_at ? ` ${formatWithZone(o.decided_at, zone)}` : ''}
            {o.reason ? ` (${o.reason})` : ''}
          </li>
        ))}
        {data.offers.length === 0 && a.status === 'requested' && <li>Waiting to be offered to a doctor.</li>}
      </ol>
      <ErrorMsg error={actionError} />
      <Saved show={!!done && !busy}>{done}</Saved>
      {a.status === 'confirmed' && (
        <p>
          <Link className="button" to={`/call/${a.id}`}>
            Open video call
          </Link>
        </p>
      )}
      {user?.role === 'doctor' && a.status === 'confirmed' && (
        <div className="actions">
          <label>
            Notes
            <textarea value={notes} onChange={(e) => setNotes(e.target.value)} rows={3} maxLength={5000} />
          </label>
          <button disabled={busy} onClick={() => (notes.trim() ? act('Appointment completed; notes saved.', () => appointments.complete(id, notes.trim())) : setError('Write the notes first.'))}>
            Complete with notes
          </button>{' '}
          <button disabled={busy} className="secondary" onClick={() => act('Marked as a no-show.', () => appointments.noShow(id))}>
            Mark no-show
          </button>
        </div>
      )}
      {user?.role === 'patient' && open && (
        <div className="actions">
          <label>
            Reason for cancelling
            <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={1000} />
          </label>
          <button disabled={busy} className="danger" onClick={() => (reason.trim() ? act('Appointment cancelled.', () => appointments.cancel(id, reason.trim())) : setError('Give a reason to cancel.'))}>
            Cancel appointment
          </button>
          {a.status === 'confirmed' && (
            <form onSubmit={reschedule}>
              <h3>Reschedule</h3>
              <div className="row">
                <label>
                  New earliest ({zone})
                  <input type="datetime-local" value={rs || (a.start ? isoToWall(a.start, zone) : '')} onChange={(e) => setRs(e.target.value)} />
                </label>
                <label>
                  New latest ({zone})
                  <input type="datetime-local" value={re} onChange={(e) => setRe(e.target.value)} />
                </label>
              </div>
              <button disabled={busy}>Ask to reschedule</button>
            </form>
          )}
        </div>
      )}
      {a.doctor_id && ['confirmed', 'completed', 'no_show'].includes(a.status) && user?.role !== 'admin' && (
        <Chat room={a.id} other={user?.role === 'doctor' ? (a.patient_name ?? 'The patient') : (a.doctor_name ?? 'The doctor')} />
      )}
    </section>
  );
}

/**
 * A move in progress. Asked by the patient (a new window): the doctor moves the appointment to
 * one of their free times in it, or declines the move. Proposed by the doctor (a new time): the
 * patient takes it or keeps the current time.
 */
function PendingChange({ a, onDone }: { a: Appointment; onDone: () => void }) {
  const { user } = useSession();
  const zone = viewerZone();
  const p = a.pending_change!;
  const [busy, error, run, setError] = useAction();
  const [why, setWhy] = useState('');
  // Live: the doctor's free times in the asked window, while they are choosing one.
  const choosing = user?.role === 'doctor' && p.by === 'patient' && !!p.window_start && !!p.window_end;
  const slots = useLiveSlots(choosing ? user?.id : null, p.window_start ?? '', p.window_end ?? '');
  const choice = useSlotChoice(slots.slots);
  const answer = (accept: boolean) => run(() => appointments.answerProposal(a.id, accept)).then((ok) => ok && onDone());
  const move = async () => {
    const slot = choice.chosen;
    if (!slot) return setError('Choose a free time.');
    const { ok } = await withChoice(choice, slots.refresh, run, () => appointments.accept(a.id, slot.start));
    if (ok) onDone();
  };
  const refuse = async () => {
    if (!why.trim()) return setError('Give a reason: the patient is told it.');
    if (await run(() => appointments.decline(a.id, why.trim()))) onDone();
  };
  return (
    <div className="card" aria-labelledby="pending-h">
      <h2 id="pending-h" className="h3">
        Reschedule in progress
      </h2>
      {p.by === 'patient' && p.window_start && p.window_end && (
        <p className="small">
          New window asked for by the patient: {formatWithZone(p.window_start, zone)} – {formatWithZone(p.window_end, zone)}
        </p>
      )}
      {p.start && <p className="small">Proposed time: {formatWithZone(p.start, zone)}</p>}
      {user?.role === 'patient' && p.by === 'doctor' && p.start && (
        <div className="row">
          <button disabled={busy} onClick={() => answer(true)}>
            Accept the proposed time
          </button>
          <button disabled={busy} className="secondary" onClick={() => answer(false)}>
            Keep the current time
          </button>
        </div>
      )}
      {user?.role === 'patient' && p.by === 'patient' && <p className="small">Waiting for the doctor to choose a time in your window.</p>}
      {user?.role === 'doctor' && p.by === 'doctor' && <p className="small">Waiting for the patient to answer.</p>}
      {choosing && (
        <div>
          {slots.loading && !slots.slots && <Loading what="Loading your free times" />}
          <SlotNotice notice={choice.notice} />
          {slots.slots && slots.slots.length === 0 && <Empty>You have no free time in the asked window.</Empty>}
          {slots.slots && slots.slots.length > 0 && (
            <SlotPicker slots={slots.slots} zone={zone} name="move-slot" legend={`Free time (${zone})`} value={choice.chosen?.start ?? null} onChange={choice.choose} />
          )}
          <button disabled={busy} onClick={move}>
            Move to this time
          </button>
          <div className="row">
            <label>
              Reason to decline the move
              <input value={why} onChange={(e) => setWhy(e.target.value)} maxLength={1000} />
            </label>
            <button disabled={busy} className="secondary" onClick={refuse}>
              Decline the move
            </button>
          </div>
        </div>
      )}
      <ErrorMsg error={error} />
    </div>
  );
}

/** The doctor proposes another of their free times in the next week; the patient answers. */
function ProposeTime({ a, onDone }: { a: Appointment; onDone: () => void }) {
  const { user } = useSession();
  const zone = viewerZone();
  // Fixed for the life of the form, so the picker's range (and its live watch) stays put.
  const [range] = useState(() => ({ from: new Date(Date.now() + 3600_000).toISOString(), to: new Date(Date.now() + 8 * 86400_000).toISOString() }));
  const [open, setOpen] = useState(false);
  const slots = useLiveSlots(open ? user?.id : null, range.from, range.to);
  const choice = useSlotChoice(slots.slots);
  const [busy, error, run, setError] = useAction();
  const propose = async () => {
    const slot = choice.chosen;
    if (!slot) return setError('Choose a free time.');
    const { ok } = await withChoice(choice, slots.refresh, run, () => appointments.propose(a.id, slot.start));
    if (ok) onDone();
  };
  if (!open)
    return (
      <p>
        <button className="secondary" onClick={() => setOpen(true)}>
          Propose another time
        </button>
      </p>
    );
  return (
    <div className="card" aria-labelledby="propose-h">
      <h2 id="propose-h" className="h3">
        Propose another time
      </h2>
      {slots.loading && !slots.slots && <Loading what="Loading your free times" />}
      <SlotNotice notice={choice.notice} />
      {slots.slots && slots.slots.length === 0 && <Empty>You have no free time in the next week.</Empty>}
      {slots.slots && slots.slots.length > 0 && (
        <SlotPicker slots={slots.slots} zone={zone} name="propose-slot" legend={`Free time (${zone})`} value={choice.chosen?.start ?? null} onChange={choice.choose} />
      )}
      <button disabled={busy} onClick={propose}>
        Propose this time
      </button>
      <ErrorMsg error={error} />
    </div>
  );
}

/** The patient's date of birth, phone and insurance as their doctor reads them (read-only). */
function PatientDetails({ patientId }: { patientId: string }) {
  const { data, error, loading } = useLoad(() => patients.profileOf(patientId), [patientId]);
  return (
    <section className="card" aria-labelledby="details-h" data-testid="patient-details">
      <h2 id="details-h" className="h3">
        Patient’s details and insurance
      </h2>
      {loading && !data && <Loading what="Loading the patient’s details" />}
      <ErrorMsg error={error} />
      {data && (
        <dl className="facts">
          <dt>Date of birth</dt>
          <dd>{data.date_of_birth ?? 'Not given'}</dd>
          <dt>Phone</dt>
          <dd>{data.phone ?? 'Not given'}</dd>
          {(data.insurance ?? []).map((p, i) => (
            <Fragment key={p.rank}>
              <dt>{policyTitle(i)}</dt>
              <dd>{policyLine(p)}</dd>
            </Fragment>
          ))}
          {!data.insurance?.length && (
            <>
              <dt>Insurance</dt>
              <dd>None on file</dd>
            </>
          )}
        </dl>
      )}
    </section>
  );
}

/** The patient's medical history as their doctor reads it: read-only (only the patient edits it). */
function PatientRecord({ patientId }: { patientId: string }) {
  const { data, error, loading } = useLoad(() => patients.recordOf(patientId), [patientId]);
  return (
    <section className="card" aria-labelledby="record-h" data-testid="patient-record">
      <h2 id="record-h" className="h3">
        Patient’s medical history
      </h2>
      <p className="small muted">Read-only: only the patient can change it.</p>
      {loading && !data && <Loading what="Loading the medical history" />}
      <ErrorMsg error={error} />
      {data && (
        <dl className="facts">
          <dt>Blood type</dt>
          <dd>{bloodTypeLabel(data.blood_type ?? 'unknown')}</dd>
          <dt>Allergies</dt>
          <dd>
            {data.allergies?.length
              ? data.allergies.map((x) => `${x.substance}${x.severity ? ` (${x.severity})` : ''}${x.reaction ? `: ${x.reaction}` : ''}`).join('; ')
              : 'None recorded'}
          </dd>
          <dt>Conditions</dt>
          <dd>{data.conditions?.length ? data.conditions.map((x) => x.name).join('; ') : 'None recorded'}</dd>
          <dt>Medications</dt>
          <dd>{data.medications?.length ? data.medications.map((x) => `${x.name} ${x.dose}, ${x.frequency}`).join('; ') : 'None recorded'}</dd>
          <dt>Notes</dt>
          <dd className="prewrap">{data.notes?.trim() ? data.notes : 'None'}</dd>
        </dl>
      )}
    </section>
  );
}
