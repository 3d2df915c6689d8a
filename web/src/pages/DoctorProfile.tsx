import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { doctors, MAX_BIO, MAX_SPECIALTIES, specialtiesText, specialtyLabel, specialtySlug, type DoctorProfile as Profile } from '../lib/doctors';
import { languageName, languagesText, parseLanguages } from '../lib/languages';
import { ErrorMsg, Loading, VersionedSaveFooter, useLoad, useVersionedSave } from '../lib/ui';

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
  const form = useVersionedSave(STALE, {
    forbidden: 'You can edit your profile once an administrator has approved your account.',
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    form.setSaved(false);
    const parts = specialties.split(',').map((s) => s.trim()).filter(Boolean);
    const slugs: string[] = [];
    for (const p of parts) {
      const s = specialtySlug(p);
      if (!s) return form.setError(`“${p}” is not a specialty: use letters, digits, spaces and dashes (at most 50).`);
      if (!slugs.includes(s)) slugs.push(s);
    }
    if (slugs.length === 0) return form.setError('Give at least one specialty, e.g. cardiology.');
    if (slugs.length > MAX_SPECIALTIES) return form.setError(`List at most ${MAX_SPECIALTIES} specialties.`);
    if (Array.from(bio.trim()).length > MAX_BIO) return form.setError(`The bio is at most ${MAX_BIO} characters.`);
    const langs = parseLanguages(languages);
    if ('error' in langs) return form.setError(langs.error);
    await form.save(async () => {
      const next = await doctors.saveMyProfile(slugs, langs.codes, bio.trim(), version);
      setVersion(next.version);
      setShown(next.specialties);
      setShownLanguages(next.languages);
      setLanguages(next.languages.map(languageName).join(', '));
      setSpecialties(next.specialties.map(specialtyLabel).join(', '));
      setBio(next.bio);
    });
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
        <VersionedSaveFooter what="profile" form={form} onReload={onReload} />
      </form>
    </>
  );
}
