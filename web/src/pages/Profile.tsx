import { useEffect, useState, type FormEvent } from 'react';
import { ApiError } from '../lib/api';
import { patients, BLOOD_TYPES, bloodTypeLabel, type BloodType, type PatientProfile, type MedicalRecord } from '../lib/patients';
import { ErrorMsg, Loading, Saved, errorText, useAction } from '../lib/ui';

/**
 * A patient's own profile and medical history. Each form loads its own data with the ETag it
 * came with and saves against that ETag (`If-Match`); a save answered 412 changed nothing and
 * keeps what was typed. Each section is its own component with its own state, so the two never
 * share React keys or remount each other.
 */
export function Profile() {
  return (
    <section>
      <h1>Profile and medical history</h1>
      <ProfileSection />
      <RecordSection />
    </section>
  );
}

/** Sentences for a versioned save: a stale version means someone else saved first. */
const STALE = {
  precondition_failed: 'Changed elsewhere: reload to see the latest.',
  conflict: 'Changed elsewhere: reload to see the latest.',
};

/** Loads a versioned resource once, and again on `reload()`. */
function useVersioned<T>(load: () => Promise<{ data: T; etag: string }>) {
  const [state, setState] = useState<{ data: T; etag: string; n: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load()
      .then((v) => live && (setState((s) => ({ ...v, n: (s?.n ?? 0) + 1 })), setError(null)))
      .catch((e) => live && setError(errorText(e)));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tick]);
  return { state, error, reload: () => setTick((t) => t + 1) };
}

function ProfileSection() {
  const { state, error, reload } = useVersioned(patients.profile);
  if (!state) return error ? <ErrorMsg error={error} /> : <Loading what="Loading your profile" />;
  // A fresh load (first, or "load the latest") starts the form from what the server has.
  return <ProfileForm key={state.n} profile={state.data} etag={state.etag} onReload={reload} />;
}

function ProfileForm({ profile, etag: firstEtag, onReload }: { profile: PatientProfile; etag: string; onReload: () => void }) {
  const [etag, setEtag] = useState(firstEtag);
  const [dob, setDob] = useState(profile.date_of_birth ?? '');
  const [phone, setPhone] = useState(profile.phone ?? '');
  const [saved, setSaved] = useState(false);
  const [stale, setStale] = useState(false);
  const [busy, error, run, setError] = useAction(STALE);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const problem = checkProfile(dob, phone);
    if (problem) return setError(problem);
    const ok = await run(async () => {
      try {
        const next = await patients.saveProfile(
          // Fields this form does not edit go back as they were read: an update replaces all.
          { date_of_birth: dob || undefined, phone: phone.trim() || undefined, address: profile.address, emergency_contact: profile.emergency_contact },
          etag,
        );
        setEtag(next.etag);
      } catch (err) {
        if (err instanceof ApiError && err.code in STALE) setStale(true);
        throw err;
      }
    });
    setSaved(ok);
  };
  return (
    <form onSubmit={submit} aria-labelledby="profile-h" noValidate data-testid="profile-form">
      <h2 id="profile-h">Profile</h2>
      <label>
        Date of birth
        <input type="date" value={dob} max={new Date().toISOString().slice(0, 10)} onChange={(e) => setDob(e.target.value)} />
      </label>
      <label>
        Phone
        <input type="tel" autoComplete="tel" value={phone} onChange={(e) => setPhone(e.target.value)} />
      </label>
      <ErrorMsg error={error} />
      {stale && (
        <button type="button" className="secondary" onClick={onReload}>
          Load the latest profile (discards your changes)
        </button>
      )}
      <Saved show={saved && !busy}>Profile saved.</Saved>
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save profile'}
      </button>
    </form>
  );
}

/** A sentence for what is wrong with the profile fields, or null. */
export function checkProfile(dob: string, phone: string): string | null {
  if (dob) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(dob)) return 'Enter the date of birth as a full date.';
    if (dob < '1900-01-01') return 'The date of birth cannot be before 1900.';
    if (dob > new Date().toISOString().slice(0, 10)) return 'The date of birth cannot be in the future.';
  }
  const p = phone.trim();
  if (p) {
    const digits = p.replace(/\D/g, '').length;
    if (!/^\+?[0-9 ().-]+$/.test(p) || digits < 6 || digits > 15)
      return 'A phone number has 6 to 15 digits, and may use +, spaces, dots, dashes and brackets.';
  }
  return null;
}

function RecordSection() {
  const { state, error, reload } = useVersioned(patients.record);
  if (!state) return error ? <ErrorMsg error={error} /> : <Loading what="Loading your medical history" />;
  return <RecordForm key={state.n} record={state.data} etag={state.etag} onReload={reload} />;
}

function RecordForm({ record, etag: firstEtag, onReload }: { record: MedicalRecord; etag: string; onReload: () => void }) {
  const [etag, setEtag] = useState(firstEtag);
  const [blood, setBlood] = useState<BloodType>(record.blood_type ?? 'unknown');
  const [notes, setNotes] = useState(record.notes ?? '');
  const [saved, setSaved] = useState(false);
  const [stale, setStale] = useState(false);
  const [busy, error, run, setError] = useAction(STALE);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    if (notes.length > 5000) return setError('Notes are at most 5000 characters.');
    const ok = await run(async () => {
      try {
        const next = await patients.saveRecord(
          { allergies: record.allergies, conditions: record.conditions, medications: record.medications, blood_type: blood, notes },
          etag,
        );
        setEtag(next.etag);
      } catch (err) {
        if (err instanceof ApiError && err.code in STALE) setStale(true);
        throw err;
      }
    });
    setSaved(ok);
  };
  const list = (xs: string[]) => (xs.length ? xs.join(', ') : 'none recorded');
  return (
    <form onSubmit={submit} aria-labelledby="record-h" noValidate data-testid="record-form">
      <h2 id="record-h">Medical history</h2>
      <dl className="facts small">
        <dt>Allergies</dt>
        <dd>{list((record.allergies ?? []).map((a) => a.substance))}</dd>
        <dt>Conditions</dt>
        <dd>{list((record.conditions ?? []).map((c) => c.name))}</dd>
        <dt>Medications</dt>
        <dd>{list((record.medications ?? []).map((m) => `${m.name} ${m.dose}`))}</dd>
      </dl>
      <label>
        Blood type
        <select value={blood} onChange={(e) => setBlood(e.target.value as BloodType)}>
          {BLOOD_TYPES.map((b) => (
            <option key={b} value={b}>
              {bloodTypeLabel(b)}
            </option>
          ))}
        </select>
      </label>
      {/* Labelled by id: a wrapping label would put the text typed into the textarea's name. */}
      <label htmlFor="record-notes">Notes for your doctors</label>
      <textarea id="record-notes" value={notes} onChange={(e) => setNotes(e.target.value)} rows={4} maxLength={5000} />
      <ErrorMsg error={error} />
      {stale && (
        <button type="button" className="secondary" onClick={onReload}>
          Load the latest medical history (discards your changes)
        </button>
      )}
      <Saved show={saved && !busy}>Medical history saved.</Saved>
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save medical history'}
      </button>
    </form>
  );
}
