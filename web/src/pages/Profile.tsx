import { useState, type FormEvent } from 'react';
import { api } from '../lib/api';
import { ErrorMsg, Loading, useAction, useLoad } from '../lib/ui';

interface ProfileView {
  display_name?: string | null;
  date_of_birth?: string;
  phone?: string;
  version: number;
}

interface RecordView {
  allergies: { substance?: string; name?: string; severity?: string }[];
  conditions: unknown[];
  medications: unknown[];
  blood_type: string;
  notes: string;
  version: number;
}

export function Profile() {
  const profile = useLoad(() => api.get<ProfileView>('/api/patients/me/profile'), []);
  const record = useLoad(() => api.get<RecordView>('/api/patients/me/record'), []);
  return (
    <section>
      <h1>Profile and medical history</h1>
      {profile.loading && !profile.data && <Loading />}
      <ErrorMsg error={profile.error} />
      {profile.data && <ProfileForm key={profile.data.version} p={profile.data} reload={profile.reload} />}
      {record.loading && !record.data && <Loading />}
      <ErrorMsg error={record.error} />
      {record.data && <RecordForm key={record.data.version} r={record.data} reload={record.reload} />}
    </section>
  );
}

function ProfileForm({ p, reload }: { p: ProfileView; reload: () => void }) {
  const [dob, setDob] = useState(p.date_of_birth ?? '');
  const [phone, setPhone] = useState(p.phone ?? '');
  const [busy, error, run, setError] = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (phone && !/^\+?[0-9 ()-]{6,32}$/.test(phone)) return setError('A phone number has 6 to 32 digits, spaces or + ( ) -.');
    const body: Record<string, unknown> = { expected_version: p.version };
    if (dob) body.date_of_birth = dob;
    if (phone) body.phone = phone;
    if (await run(() => api.put('/api/patients/me/profile', body))) reload();
  };
  return (
    <form onSubmit={submit} aria-labelledby="profile-h">
      <h2 id="profile-h">Profile</h2>
      <label>
        Date of birth
        <input type="date" value={dob} onChange={(e) => setDob(e.target.value)} />
      </label>
      <label>
        Phone
        <input type="tel" value={phone} onChange={(e) => setPhone(e.target.value)} />
      </label>
      <ErrorMsg error={error} />
      <button disabled={busy}>Save profile</button>
    </form>
  );
}

const BLOOD = ['unknown', 'a_pos', 'a_neg', 'b_pos', 'b_neg', 'ab_pos', 'ab_neg', 'o_pos', 'o_neg'];

function RecordForm({ r, reload }: { r: RecordView; reload: () => void }) {
  const [blood, setBlood] = useState(r.blood_type);
  const [notes, setNotes] = useState(r.notes);
  const [busy, error, run, setError] = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (notes.length > 5000) return setError('Notes are at most 5000 characters.');
    const ok = await run(() =>
      api.put('/api/patients/me/record', {
        expected_version: r.version,
        allergies: r.allergies,
        conditions: r.conditions,
        medications: r.medications,
        blood_type: blood,
        notes,
      }),
    );
    if (ok) reload();
  };
  const options = BLOOD.includes(r.blood_type) ? BLOOD : [r.blood_type, ...BLOOD];
  return (
    <form onSubmit={submit} aria-labelledby="record-h">
      <h2 id="record-h">Medical history</h2>
      <p className="small">
        Allergies: {r.allergies.length ? r.allergies.map((a) => a.substance ?? a.name).join(', ') : 'none recorded'} · Conditions:{' '}
        {r.conditions.length} · Medications: {r.medications.length}
      </p>
      <label>
        Blood type
        <select value={blood} onChange={(e) => setBlood(e.target.value)}>
          {options.map((b) => (
            <option key={b}>{b}</option>
          ))}
        </select>
      </label>
      <label>
        Notes for your doctors
        <textarea value={notes} onChange={(e) => setNotes(e.target.value)} rows={4} />
      </label>
      <ErrorMsg error={error} />
      <button disabled={busy}>Save medical history</button>
    </form>
  );
}
