import { useMemo, useState, type FormEvent } from 'react';
import { account, zoneChoices } from '../lib/account';
import { viewerZone } from '../lib/time';
import { ErrorMsg, Loading, Saved, useAction, useLoad } from '../lib/ui';
import { ChangePassword } from './Auth';

/**
 * The signed-in person's account (`/account`, the Account link in the header): the time zone their
 * mails and reminders are written in, and their password.
 */
export function Account() {
  return (
    <section className="narrow">
      <h1>Your account</h1>
      <TimeZoneSection />
      <ChangePassword />
    </section>
  );
}

/** The stored zone, read from the API (not the session's copy, which a change elsewhere outdates). */
function TimeZoneSection() {
  const { data, error } = useLoad(() => account.me(), []);
  return (
    <>
      <h2>Time zone</h2>
      {data ? <TimeZoneForm stored={data.time_zone} /> : error ? <ErrorMsg error={error} /> : <Loading what="Loading your account" />}
    </>
  );
}

function TimeZoneForm({ stored: first }: { stored: string }) {
  const [stored, setStored] = useState(first);
  const [zone, setZone] = useState(first);
  const [done, setDone] = useState(false);
  const [busy, error, run] = useAction({
    validation_failed: 'carehub does not know this time zone. Choose another one from the list.',
  });
  const here = viewerZone();
  const choices = useMemo(() => zoneChoices([first, here]), [first, here]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    const ok = await run(async () => {
      const changed = await account.setTimeZone(zone);
      setStored(changed.time_zone);
      setZone(changed.time_zone);
    });
    setDone(ok);
  };
  return (
    <form onSubmit={submit} noValidate aria-label="Time zone">
      <p className="small">
        Mails and reminders give times in <strong data-testid="stored-zone">{stored}</strong>. Pages show times in this browser’s zone, {here}.
      </p>
      <label>
        Time zone for mails and reminders
        <select value={zone} onChange={(e) => (setZone(e.target.value), setDone(false))}>
          {choices.map((z) => (
            <option key={z} value={z}>
              {z}
            </option>
          ))}
        </select>
      </label>
      {zone !== here && (
        <p>
          <button type="button" className="link" onClick={() => (setZone(here), setDone(false))}>
            Use this browser’s zone ({here})
          </button>
        </p>
      )}
      <ErrorMsg error={error} />
      <Saved show={done && !busy}>Time zone saved: mails and reminders now give times in {stored}.</Saved>
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : 'Save time zone'}
      </button>
    </form>
  );
}
