import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { ApiError } from '../lib/api';
import { doctors, MAX_BIO, MAX_SPECIALTIES, specialtiesText, specialtyLabel, specialtySlug, type DoctorProfile as Profile } from '../lib/doctors';
import { languageName, languagesText, parseLanguages } from '../lib/languages';
import { ErrorMsg, Loading, Saved, useAction, useLoad } from '../lib/ui';

const STALE = { conflict: 'Changed elsewhere: reload to see the latest.' };

/** An approved doctor's specialties and bio: what patients see in the directory. */
export function DoctorProfile() {
  const [n, setN] = useState(0);
  const { data, error, loading } = useLoad(() => doctors.myProfile(), [n]);
  return (
    <section className="narrow">
      <h1>Your profile</h1>
      {loading && !data && <Loading />}
      <ErrorMsg error={error} />
      {data && <DoctorProfileForm key={n} profile={data} onReload={() => setN(n + 1)} />}
    </section>
  );
}

function DoctorProfileForm({ profile, onReload }: { profile: Profile; onReload: () => void }) {
  const [version, setVersion] = useState(profile.version);
  const [specialties, setSpecialties] = useState(profile.specialties.map(specialtyLabel).join(', '));
  const [bio, setBio] = useState(profile.bio);
  const [languages, setLanguages] = useState(profile.languages.map(languageName).join(', '));
  const [shown, setShown] = useState(profile.specialties);
  const [shownLanguages, setShownLanguages] = useState(profile.languages);
  const [saved, setSaved] = useState(false);
  const [stale, setStale] = useState(false);
  const [busy, error, run, setError] = useAction({
    ...STALE,
    forbidden: 'You can edit your profile once an administrator has approved your account.',
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const parts = specialties.split(',').map((s) => s.trim()).filter(Boolean);
    const slugs: string[] = [];
    for (const p of parts) {
      const s = specialtySlug(p);
      if (!s) return setError(`“${p}” is not a specialty: use letters, digits, spaces and dashes (at most 50).`);
      if (!slugs.includes(s)) slugs.push(s);
    }
    if (slugs.length === 0) return setError('Give at least one specialty, e.g. cardiology.');
    if (slugs.length > MAX_SPECIALTIES) return setError(`List at most ${MAX_SPECIALTIES} specialties.`);
    if (Array.from(bio.trim()).length > MAX_BIO) return setError(`The bio is at most ${MAX_BIO} characters.`);
    const langs = parseLanguages(languages);
    if ('error' in langs) return setError(langs.error);
    const ok = await run(async () => {
      try {
        const next = await doctors.saveMyProfile(slugs, langs.codes, bio.trim(), version);
        setVersion(next.version);
        setShown(next.specialties);
        setShownLanguages(next.languages);
        setLanguages(next.languages.map(languageName).join(', '));
        setSpecialties(next.specialties.map(specialtyLabel).join(', '));
        setBio(next.bio);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'conflict') setStale(true);
        throw err;
      }
    });
    setSaved(ok);
  };
  return (
    <>
      {!profile.approved && <p className="small">Your account waits for approval: patients cannot find you yet.</p>}
      <p className="small">
        Patients see you in the <Link to="/doctors">directory</Link> as: <strong data-testid="shown-specialties">{specialtiesText(shown)}</strong>;
        speaking <strong data-testid="shown-languages">{languagesText(shownLanguages)}</strong>
      </p>
      <form onSubmit={submit} aria-labelledby="doctor-profile-h" noValidate>
        <h2 id="doctor-profile-h">Specialties, languages and bio</h2>
        <label>
          Specialties (separate them with commas)
          <input value={specialties} onChange={(e) => setSpecialties(e.target.value)} placeholder="e.g. cardiology, sports medicine" />
        </label>
        <label>
          Languages you consult in (names or two-letter codes, separated by commas)
          <input value={languages} onChange={(e) => setLanguages(e.target.value)} placeholder="e.g. English, German" />
        </label>
        {/* Labelled by id: a wrapping label would put the text typed into the textarea's name. */}
        <label htmlFor="doctor-bio">Bio</label>
        <textarea id="doctor-bio" value={bio} onChange={(e) => setBio(e.target.value)} rows={6} maxLength={MAX_BIO} />
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
    </>
  );
}
