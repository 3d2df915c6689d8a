import { useEffect, useState, type ComponentType, type FormEvent } from 'react';
import {
  patients,
  BLOOD_TYPES,
  HOLDER_RELATIONSHIPS,
  MAX_POLICIES,
  bloodTypeLabel,
  addressDraft,
  checkContactDetails,
  checkPolicies,
  contactDraft,
  fromAddressDraft,
  fromContactDraft,
  fromDrafts,
  policyTitle,
  relationshipLabel,
  toDraft,
  type AddressDraft,
  type BloodType,
  type ContactDraft,
  type HolderRelationship,
  type MedicalRecord,
  type PatientProfile,
  type PolicyDraft,
} from '../lib/patients';
import { ErrorMsg, Loading, VersionedSaveFooter, errorText, useVersionedSave } from '../lib/ui';

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
      <VersionedSection load={patients.profile} loading="Loading your profile" Form={ProfileForm} />
      <VersionedSection load={patients.record} loading="Loading your medical history" Form={RecordForm} />
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

/** What a versioned form is given: the data and ETag of a fresh load, and a way to load again. */
interface VersionedFormProps<T> {
  data: T;
  etag: string;
  onReload: () => void;
}

/** One section of the page: loads its resource, then shows its form. */
function VersionedSection<T>({ load, loading, Form }: { load: () => Promise<{ data: T; etag: string }>; loading: string; Form: ComponentType<VersionedFormProps<T>> }) {
  const { state, error, reload } = useVersioned(load);
  if (!state) return error ? <ErrorMsg error={error} /> : <Loading what={loading} />;
  // A fresh load (first, or "load the latest") starts the form from what the server has.
  return <Form key={state.n} data={state.data} etag={state.etag} onReload={reload} />;
}

function ProfileForm({ data: profile, etag: firstEtag, onReload }: VersionedFormProps<PatientProfile>) {
  const [etag, setEtag] = useState(firstEtag);
  const [dob, setDob] = useState(profile.date_of_birth ?? '');
  const [phone, setPhone] = useState(profile.phone ?? '');
  const [address, setAddress] = useState<AddressDraft>(addressDraft(profile.address));
  const [contact, setContact] = useState<ContactDraft>(contactDraft(profile.emergency_contact));
  const [policies, setPolicies] = useState<PolicyDraft[]>((profile.insurance ?? []).map(toDraft));
  const form = useVersionedSave(STALE);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    form.setSaved(false);
    const problem = checkProfile(dob, phone) ?? checkContactDetails(address, contact) ?? checkPolicies(policies);
    if (problem) return form.setError(problem);
    await form.save(async () => {
      const next = await patients.saveProfile(
        {
          date_of_birth: dob || undefined,
          phone: phone.trim() || undefined,
          address: fromAddressDraft(address),
          emergency_contact: fromContactDraft(contact),
          insurance: fromDrafts(policies),
        },
        etag,
      );
      setEtag(next.etag);
    });
  };
  const edit = (i: number, change: Partial<PolicyDraft>) => setPolicies((ps) => ps.map((p, j) => (j === i ? { ...p, ...change } : p)));
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
      <fieldset>
        <legend>Address</legend>
        <label>
          Address line 1
          <input autoComplete="address-line1" value={address.line1} maxLength={200} onChange={(e) => setAddress({ ...address, line1: e.target.value })} />
        </label>
        <label>
          Address line 2 (optional)
          <input autoComplete="address-line2" value={address.line2} maxLength={200} onChange={(e) => setAddress({ ...address, line2: e.target.value })} />
        </label>
        <label>
          City
          <input autoComplete="address-level2" value={address.city} maxLength={100} onChange={(e) => setAddress({ ...address, city: e.target.value })} />
        </label>
        <label>
          Postal code
          <input autoComplete="postal-code" value={address.postal_code} maxLength={20} onChange={(e) => setAddress({ ...address, postal_code: e.target.value })} />
        </label>
        <label>
          Country
          <input autoComplete="country-name" value={address.country} maxLength={100} onChange={(e) => setAddress({ ...address, country: e.target.value })} />
        </label>
      </fieldset>
      <fieldset>
        <legend>Emergency contact</legend>
        <label>
          Name
          <input value={contact.name} maxLength={100} onChange={(e) => setContact({ ...contact, name: e.target.value })} />
        </label>
        <label>
          Contact number
          <input type="tel" value={contact.phone} maxLength={32} onChange={(e) => setContact({ ...contact, phone: e.target.value })} />
        </label>
        <label>
          Relationship to you (optional)
          <input value={contact.relationship} maxLength={50} onChange={(e) => setContact({ ...contact, relationship: e.target.value })} />
        </label>
      </fieldset>
      <h3>Insurance</h3>
      {policies.length === 0 && <p className="small">No insurance on file.</p>}
      {policies.map((p, i) => (
        <PolicyFields key={i} title={policyTitle(i)} policy={p} onChange={(change) => edit(i, change)} onRemove={() => setPolicies((ps) => ps.filter((_, j) => j !== i))} />
      ))}
      {policies.length < MAX_POLICIES && (
        <button
          type="button"
          className="secondary"
          onClick={() => setPolicies((ps) => [...ps, { payer: '', member_id: '', group_number: '', holder: '', relationship: 'self', valid_from: '', valid_to: '' }])}
        >
          {policies.length === 0 ? 'Add insurance' : 'Add secondary insurance'}
        </button>
      )}
      <VersionedSaveFooter what="profile" form={form} onReload={onReload} />
    </form>
  );
}

/** One policy's fields, in a group named after its rank ("Primary insurance"). */
function PolicyFields({ title, policy, onChange, onRemove }: { title: string; policy: PolicyDraft; onChange: (change: Partial<PolicyDraft>) => void; onRemove: () => void }) {
  return (
    <fieldset>
      <legend>{title}</legend>
      <label>
        Insurer or plan
        <input value={policy.payer} maxLength={200} onChange={(e) => onChange({ payer: e.target.value })} />
      </label>
      <label>
        Member ID
        <input value={policy.member_id} maxLength={64} onChange={(e) => onChange({ member_id: e.target.value })} />
      </label>
      <label>
        Group number (optional)
        <input value={policy.group_number} maxLength={64} onChange={(e) => onChange({ group_number: e.target.value })} />
      </label>
      <label>
        Policy holder
        <input value={policy.holder} maxLength={100} onChange={(e) => onChange({ holder: e.target.value })} />
      </label>
      <label>
        Your relationship to the holder
        <select value={policy.relationship} onChange={(e) => onChange({ relationship: e.target.value as HolderRelationship })}>
          {HOLDER_RELATIONSHIPS.map((r) => (
            <option key={r} value={r}>
              {relationshipLabel(r)}
            </option>
          ))}
        </select>
      </label>
      <label>
        Covered from (optional)
        <input type="date" value={policy.valid_from} onChange={(e) => onChange({ valid_from: e.target.value })} />
      </label>
      <label>
        Covered until (optional)
        <input type="date" value={policy.valid_to} min={policy.valid_from || undefined} onChange={(e) => onChange({ valid_to: e.target.value })} />
      </label>
      <button type="button" className="secondary" onClick={onRemove}>
        Remove {title.toLowerCase()}
      </button>
    </fieldset>
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

function RecordForm({ data: record, etag: firstEtag, onReload }: VersionedFormProps<MedicalRecord>) {
  const [etag, setEtag] = useState(firstEtag);
  const [blood, setBlood] = useState<BloodType>(record.blood_type ?? 'unknown');
  const [notes, setNotes] = useState(record.notes ?? '');
  const form = useVersionedSave(STALE);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    form.setSaved(false);
    if (notes.length > 5000) return form.setError('Notes are at most 5000 characters.');
    await form.save(async () => {
      const next = await patients.saveRecord(
        { allergies: record.allergies, conditions: record.conditions, medications: record.medications, blood_type: blood, notes },
        etag,
      );
      setEtag(next.etag);
    });
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
      <VersionedSaveFooter what="medical history" form={form} onReload={onReload} />
    </form>
  );
}
