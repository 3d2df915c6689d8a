// Browser tests of the forms: each fills a form in Chromium, presses its button, reloads, and
// checks the stored state through the API, not only what the page shows. Errors are provoked
// on purpose (and allowed for that page only): the page must show a sentence, never the API's
// own message. Runs against its own clinic (see harness.mjs).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Clinic, checkScreen, until } from './harness.mjs';

const clinic = new Clinic();
const axeProblems = [];
const stamp = Date.now().toString(36);

async function screen(page, name) {
  axeProblems.push(...(await checkScreen(page, name)));
}

/** A new account made through the API (doctors are approved by the demo admin). */
async function newAccount(role, name) {
  const email = `${name.toLowerCase().replace(/[^a-z]+/g, '.')}.${stamp}@example.test`;
  const acct = { role, email, password: `pw-${stamp}-long-enough`, name };
  await clinic.api('POST', '/api/auth/register', null, { email, password: acct.password, display_name: name, role });
  if (role === 'doctor') {
    const admin = await clinic.token(clinic.account('admin'));
    const users = await until('the new doctor in the user list', async () => {
      const r = await clinic.api('GET', `/api/admin/users?q=${encodeURIComponent(email)}&status=pending`, admin);
      return r.users.length ? r.users : null;
    });
    await clinic.api('POST', `/api/admin/users/${users[0].id}/approve`, admin, {});
  }
  acct.token = await clinic.token(acct);
  return acct;
}

/** A request whose answer headers matter (the ETag). */
async function raw(method, path, token, body, headers = {}) {
  const r = await fetch(clinic.base + path, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, etag: r.headers.get('etag'), json: await r.json().catch(() => null) };
}

describe('forms in Chromium, checked through the API', { timeout: 600_000 }, () => {
  before(async () => {
    await clinic.start();
  }, { timeout: 240_000 });

  after(async () => {
    await clinic.stop();
  });

  test('a signed-out load makes no request that fails; the session hint follows sign-in and sign-out', async () => {
    const page = await clinic.pageAs(null);
    const refreshes = [];
    page.on('request', (r) => r.url().includes('/api/auth/refresh') && refreshes.push(r.url()));
    for (const path of ['/', '/login', '/appointments', '/signup']) {
      await page.goto(path);
      await page.locator('h1').waitFor();
      await page.waitForLoadState('networkidle');
    }
    assert.deepEqual(refreshes, [], 'no refresh is tried without a session hint');
    await clinic.login(page, clinic.byEmail('grace.'));
    assert.equal(await page.evaluate(() => localStorage.getItem('carehub.session')), '1');
    await page.reload();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.equal(refreshes.length, 1, 'a reload with the hint brings the session back');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to carehub' }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('carehub.session')), null);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to carehub' }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(refreshes.length, 1, 'no refresh after signing out');
    await clinic.close(page);
  });

  test('a patient saves profile and medical history; reloads show them and the API stores them', async () => {
    const acct = await newAccount('patient', 'Mira Profile');
    const page = await clinic.pageAs(acct);
    await page.goto('/appointments');
    await page.getByText('No appointments yet.').waitFor();
    await page.goto('/profile');
    await page.getByLabel('Date of birth').fill('1984-02-29');
    await page.getByLabel('Phone').fill('+44 20 7946 0958');
    const address = page.getByRole('group', { name: 'Address' });
    await address.getByLabel('Address line 1').fill('1 Main St');
    await page.getByRole('button', { name: 'Save profile' }).click();
    // A partial address is refused before anything is sent.
    await page.getByText('Address: enter the city, or clear every address field.').waitFor();
    await address.getByLabel('City').fill('Leeds');
    await address.getByLabel('Postal code').fill('LS1 1AA');
    await address.getByLabel('Country').fill('United Kingdom');
    const contact = page.getByRole('group', { name: 'Emergency contact' });
    await contact.getByLabel('Name').fill('Sam Profile');
    await contact.getByLabel('Contact number').fill('0113 496 0000');
    await contact.getByLabel('Relationship to you (optional)').fill('sister');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();

    // Blood types read as people write them; the API gets its own spelling.
    const blood = page.getByLabel('Blood type');
    const labels = await blood.locator('option').allTextContents();
    assert.deepEqual([...labels].sort(), ['A+', 'A-', 'AB+', 'AB-', 'B+', 'B-', 'O+', 'O-', 'Unknown']);
    await blood.selectOption({ label: 'O+' });
    await page.getByLabel('Notes for your doctors').fill('Penicillin made me dizzy once.');
    await page.getByRole('button', { name: 'Save medical history' }).click();
    await page.getByRole('status').filter({ hasText: 'Medical history saved.' }).waitFor();
    await screen(page, 'patient-profile-saved');

    await page.reload();
    await page.getByTestId('profile-form').waitFor();
    assert.equal(await page.getByLabel('Date of birth').inputValue(), '1984-02-29');
    assert.equal(await page.getByLabel('Phone').inputValue(), '+44 20 7946 0958');
    assert.equal(await page.getByLabel('Blood type').locator('option:checked').textContent(), 'O+');
    assert.equal(await page.getByLabel('Notes for your doctors').inputValue(), 'Penicillin made me dizzy once.');
    let profile = await clinic.api('GET', '/api/patients/me/profile', acct.token);
    let record = await clinic.api('GET', '/api/patients/me/record', acct.token);
    assert.equal(profile.date_of_birth, '1984-02-29');
    assert.equal(profile.phone, '+44 20 7946 0958');
    assert.deepEqual(profile.address, { line1: '1 Main St', city: 'Leeds', postal_code: 'LS1 1AA', country: 'United Kingdom' });
    assert.deepEqual(profile.emergency_contact, { name: 'Sam Profile', phone: '0113 496 0000', relationship: 'sister' });
    assert.equal(await address.getByLabel('Country').inputValue(), 'United Kingdom', 'shown after the reload');
    assert.equal(await contact.getByLabel('Contact number').inputValue(), '0113 496 0000');
    assert.equal(record.blood_type, 'O+');
    assert.equal(record.notes, 'Penicillin made me dizzy once.');

    // "Unknown" saves too, a second time on the same page (the form keeps the new ETag).
    await page.getByLabel('Blood type').selectOption({ label: 'Unknown' });
    await page.getByRole('button', { name: 'Save medical history' }).click();
    await page.getByRole('status').filter({ hasText: 'Medical history saved.' }).waitFor();
    await page.getByLabel('Notes for your doctors').fill('Penicillin: dizziness.');
    await page.getByRole('button', { name: 'Save medical history' }).click();
    await page.getByRole('status').filter({ hasText: 'Medical history saved.' }).waitFor();
    record = await clinic.api('GET', '/api/patients/me/record', acct.token);
    assert.equal(record.blood_type, 'unknown');
    assert.equal(record.notes, 'Penicillin: dizziness.');
    await page.reload();
    assert.equal(await page.getByLabel('Blood type').locator('option:checked').textContent(), 'Unknown');

    // Clearing every field of the emergency contact removes it; the address stays.
    for (const label of ['Name', 'Contact number', 'Relationship to you (optional)']) await contact.getByLabel(label).fill('');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    profile = await clinic.api('GET', '/api/patients/me/profile', acct.token);
    assert.equal(profile.emergency_contact, undefined);
    assert.equal(profile.address.city, 'Leeds');
    await clinic.close(page);
  });

  test('a patient files a primary and a secondary insurance, sees them after a reload, and the API stores them', async () => {
    const acct = await newAccount('patient', 'Ines Insured');
    const page = await clinic.pageAs(acct);
    await page.goto('/profile');
    await page.getByText('No insurance on file.').waitFor();
    await page.getByRole('button', { name: 'Add insurance' }).click();
    const primary = page.getByRole('group', { name: 'Primary insurance' });
    await primary.getByLabel('Insurer or plan').fill('Northwind Health');
    await primary.getByLabel('Member ID').fill('NWH/0042');
    await primary.getByLabel('Policy holder').fill('Ines Insured');
    await page.getByRole('button', { name: 'Save profile' }).click();
    // The member ID's rule is checked before anything is sent; nothing is stored.
    await page.getByText('Primary insurance: a member ID has up to 64 letters, digits, dashes and spaces.').waitFor();
    let profile = await clinic.api('GET', '/api/patients/me/profile', acct.token);
    assert.equal(profile.insurance, undefined);

    await primary.getByLabel('Member ID').fill('NWH-0042 7781');
    await primary.getByLabel('Group number (optional)').fill('G-17');
    await primary.getByLabel('Covered from (optional)').fill('2026-01-01');
    await primary.getByLabel('Covered until (optional)').fill('2026-12-31');
    await page.getByRole('button', { name: 'Add secondary insurance' }).click();
    const secondary = page.getByRole('group', { name: 'Secondary insurance' });
    await secondary.getByLabel('Insurer or plan').fill('Contoso Mutual');
    await secondary.getByLabel('Member ID').fill('CM 5521');
    await secondary.getByLabel('Policy holder').fill('Sam Insured');
    await secondary.getByLabel('Your relationship to the holder').selectOption({ label: 'Spouse or partner' });
    assert.equal(await page.getByRole('button', { name: /^Add .*insurance$/ }).count(), 0, 'two policies at most');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    await screen(page, 'patient-insurance-saved');

    await page.reload();
    await page.getByTestId('profile-form').waitFor();
    assert.equal(await primary.getByLabel('Member ID').inputValue(), 'NWH-0042 7781');
    assert.equal(await primary.getByLabel('Covered until (optional)').inputValue(), '2026-12-31');
    assert.equal(await secondary.getByLabel('Your relationship to the holder').locator('option:checked').textContent(), 'Spouse or partner');
    profile = await clinic.api('GET', '/api/patients/me/profile', acct.token);
    assert.deepEqual(
      profile.insurance.map((p) => [p.rank, p.payer, p.member_id, p.group_number, p.holder, p.relationship, p.valid_from, p.valid_to]),
      [
        ['primary', 'Northwind Health', 'NWH-0042 7781', 'G-17', 'Ines Insured', 'self', '2026-01-01', '2026-12-31'],
        ['secondary', 'Contoso Mutual', 'CM 5521', undefined, 'Sam Insured', 'spouse', undefined, undefined],
      ],
    );

    // Removing the primary makes the secondary the primary, once saved.
    await page.getByRole('button', { name: 'Remove primary insurance' }).click();
    assert.equal(await primary.getByLabel('Insurer or plan').inputValue(), 'Contoso Mutual');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    profile = await clinic.api('GET', '/api/patients/me/profile', acct.token);
    assert.deepEqual(profile.insurance.map((p) => [p.rank, p.payer]), [['primary', 'Contoso Mutual']]);
    await clinic.close(page);
  });

  test('after any number of reloads the profile form is there once, and a save after a reload stores', async () => {
    const acct = await newAccount('patient', 'Rhea Reload');
    const page = await clinic.pageAs(acct);
    await page.goto('/profile');
    for (let i = 0; i < 5; i++) {
      await page.reload();
      await page.getByTestId('record-form').waitFor();
      await page.waitForLoadState('networkidle');
      assert.equal(await page.getByTestId('profile-form').count(), 1, `one profile form after reload ${i + 1}`);
      assert.equal(await page.getByRole('heading', { name: 'Profile', exact: true }).count(), 1);
      assert.equal(await page.getByRole('button', { name: 'Save profile' }).count(), 1);
    }
    await page.getByLabel('Phone').fill('0049 30 1234567');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/patients/me/profile', acct.token)).phone, '0049 30 1234567');
    await screen(page, 'patient-profile-after-reloads');
    await clinic.close(page);
  });

  test('a renewal the server made but the browser never heard (a reload cut it off) keeps the patient signed in', async () => {
    const acct = await newAccount('patient', 'Lou Lost');
    const page = await clinic.pageAs(acct);
    await page.goto('/profile');
    await page.getByTestId('profile-form').waitFor();
    // The server renews the session with the browser's refresh cookie, but the answer (and its
    // new cookie) never reaches the browser, as when a reload cancels the renewal in flight.
    const cookie = (await page.context().cookies()).find((c) => c.name === 'carehub_refresh');
    assert.ok(cookie, 'the refresh cookie is set');
    const lost = await raw('POST', '/api/auth/refresh', null, { refresh_token: cookie.value, refresh_token_in: 'body' });
    assert.equal(lost.status, 200);
    const renewals = [];
    page.on('response', (r) => r.url().endsWith('/api/auth/refresh') && renewals.push(r.status()));
    await page.reload();
    await page.getByTestId('profile-form').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    assert.deepEqual(renewals, [200], 'the old cookie renewed the session once');
    await page.getByLabel('Phone').fill('+33 1 23 45 67 89');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/patients/me/profile', acct.token)).phone, '+33 1 23 45 67 89');
    // The renewal the browser did hear is the session's token now: the next load renews with it.
    await page.reload();
    await page.getByTestId('profile-form').waitFor();
    assert.deepEqual(renewals, [200, 200]);
    // The token the lost answer carried was never delivered: presenting it ends the session.
    const stray = await raw('POST', '/api/auth/refresh', null, { refresh_token: lost.json.refresh_token, refresh_token_in: 'body' });
    assert.equal(stray.status, 401);
    clinic.allow(page, 401, /\/api\/auth\/refresh$/);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to carehub' }).waitFor();
    await clinic.close(page);
  });

  test('a save over a change made elsewhere is refused with a sentence and keeps what was typed (412)', async () => {
    const acct = await newAccount('patient', 'Theo Stale');
    const page = await clinic.pageAs(acct);
    await page.goto('/profile');
    await page.getByTestId('profile-form').waitFor();
    // Another device saves first.
    const read = await raw('GET', '/api/patients/me/profile', acct.token);
    const other = await raw('PUT', '/api/patients/me/profile', acct.token, { phone: '+1 212 555 0100' }, { 'if-match': read.etag });
    assert.equal(other.status, 200);
    clinic.allow(page, 412, /\/api\/patients\/me\/profile$/);
    await page.getByLabel('Phone').fill('+1 212 555 0199');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('alert').filter({ hasText: 'Changed elsewhere: reload to see the latest.' }).waitFor();
    assert.equal(await page.getByLabel('Phone').inputValue(), '+1 212 555 0199', 'what the user typed stays');
    assert.equal((await clinic.api('GET', '/api/patients/me/profile', acct.token)).phone, '+1 212 555 0100', 'nothing changed');
    await screen(page, 'patient-profile-stale');
    await page.getByRole('button', { name: /Load the latest profile/ }).click();
    await until('the latest phone in the form', async () => (await page.getByLabel('Phone').inputValue()) === '+1 212 555 0100');
    await clinic.close(page);
  });

  test('a time taken meanwhile (409) and an unknown time zone (422) are said in sentences', async () => {
    const acct = await newAccount('patient', 'Sol Taken');
    const rival = await newAccount('patient', 'Ivo Rival');
    const ines = (await clinic.api('GET', '/api/doctors?q=Moreau', acct.token)).doctors[0];
    const page = await clinic.pageAs(null);
    // The live push is a hint that may come after the click: hold it back, so the click races
    // ahead of it and the booking itself meets the taken time.
    const held = [];
    let watching = false;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((m) => (String(m).includes('"slots_changed"') ? held.push(m) : ws.send(m)));
      ws.onMessage((m) => {
        if (String(m).includes('"slots_watch"')) watching = true;
        server.send(m);
      });
    });
    await clinic.login(page, acct);
    await page.goto(`/doctors/${ines.id}`);
    const picker = page.getByRole('group', { name: /Book instantly/ });
    const first = picker.getByRole('radio').first();
    await first.waitFor();
    // Once connected the picker asks again (changes may have passed while it was away); let
    // that settle, so the only news held back below is the rival's booking.
    await until('the picker watches the doctor', () => watching, 10_000);
    await page.waitForLoadState('networkidle');
    const start = await first.getAttribute('value');
    const name = await first.getAttribute('aria-label');
    await first.check();
    await page.getByLabel('Reason').fill('Follow-up');
    // Someone else books that very time first.
    await clinic.api('POST', '/api/appointments/book', rival.token, { doctor_id: ines.id, start, reason: 'Also me' }, { 'idempotency-key': `rival-${stamp}` });
    await until('the push about the booking, held back', () => held.length > 0, 10_000);
    clinic.allow(page, 409, /\/api\/appointments\/book$/);
    await page.getByRole('button', { name: 'Book this time' }).click();
    await page.getByRole('alert').filter({ hasText: 'That time has just been taken. Please choose another time.' }).waitFor();
    // The picker asks again at once (the push is still held back): the taken time is gone.
    await picker.getByRole('radio', { name, exact: true }).waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await picker.getByRole('radio', { checked: true }).count(), 0, 'nothing stays selected');
    await screen(page, 'patient-slot-taken');
    const mine = await clinic.api('GET', '/api/appointments?limit=10', acct.token);
    assert.equal(mine.appointments.length, 0, 'nothing was booked');
    await clinic.close(page);

    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    const sara = await clinic.token(clinic.byEmail('sara.'));
    const zoneBefore = (await clinic.api('GET', '/api/doctors/me/availability', sara)).time_zone;
    await doctor.goto('/availability');
    clinic.allow(doctor, 422, /\/api\/doctors\/me\/availability$/);
    await doctor.getByLabel(/^Time zone/).fill('Mars/Olympus_Mons');
    await doctor.getByRole('button', { name: 'Save availability' }).click();
    await doctor.getByRole('alert').filter({ hasText: 'The time zone or the hours are not accepted' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/doctors/me/availability', sara)).time_zone, zoneBefore, 'nothing changed');
    await clinic.close(doctor);
  });

  test('an open booking picker loses a time another patient books, live, gets it back when they cancel, and catches up after a hub restart', async () => {
    const acct = await newAccount('patient', 'Lea Live');
    const other = await newAccount('patient', 'Bo Other');
    const ines = (await clinic.api('GET', '/api/doctors?q=Moreau', acct.token)).doctors[0];
    const page = await clinic.pageAs(acct);
    // What the hub tells the page, read off the wire: the test waits for the watch to stand.
    const frames = [];
    page.on('websocket', (ws) =>
      ws.on('framereceived', ({ payload }) => {
        try {
          frames.push(JSON.parse(String(payload)));
        } catch {
          // Not JSON: not a frame of the hub.
        }
      }),
    );
    await page.goto(`/doctors/${ines.id}`);
    const picker = page.getByRole('group', { name: /Book instantly/ });
    const radio = picker.getByRole('radio').last();
    await radio.waitFor();
    await until('the picker watching the doctor’s slots', () => frames.some((f) => f.type === 'slots_watching' && f.doctor_id === ines.id), 20_000);
    const start = await radio.getAttribute('value');
    const name = await radio.getAttribute('aria-label');
    const time = picker.getByRole('radio', { name, exact: true });
    await time.check();
    await page.evaluate(() => {
      window.notReloaded = true;
    });

    // Another patient books that time through the API.
    const booked = await clinic.api('POST', '/api/appointments/book', other.token, { doctor_id: ines.id, start, reason: 'Checkup' }, { 'idempotency-key': `live-${stamp}` });
    const stored = await clinic.api('GET', `/api/appointments/${booked.id}`, other.token);
    assert.equal(stored.appointment.status, 'confirmed');
    assert.equal(new Date(stored.appointment.start).getTime(), new Date(start).getTime());
    await time.waitFor({ state: 'detached', timeout: 10_000 });
    await page.getByRole('status').filter({ hasText: 'That time was just taken; please pick another.' }).waitFor();
    assert.equal(await picker.getByRole('radio', { checked: true }).count(), 0, 'the taken time is no longer selected');
    assert.ok(await picker.getByRole('radio').count() > 0, 'the other times stay');
    await screen(page, 'patient-slot-taken-live');
    const to = new Date(new Date(start).getTime() + 3600_000).toISOString();
    const listed = async () =>
      (await clinic.api('GET', `/api/doctors/${ines.id}/slots?from=${encodeURIComponent(start)}&to=${encodeURIComponent(to)}`, acct.token)).slots.some(
        (s) => new Date(s.start).getTime() === new Date(start).getTime(),
      );
    assert.equal(await listed(), false, 'the API no longer lists the time');

    // They cancel: the time comes back, still without a reload.
    await clinic.api('POST', `/api/appointments/${booked.id}/cancel`, other.token, { reason: 'Plans changed' });
    assert.equal((await clinic.api('GET', `/api/appointments/${booked.id}`, other.token)).appointment.status, 'cancelled');
    await time.waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await listed(), true, 'the API lists the time again');

    // The hub goes away (the failed reconnects are expected); a booking made meanwhile reaches
    // no one, yet the picker shows it once it is connected again: it asks after a reconnect.
    clinic.allow(page, '*', /\/ws/);
    clinic.allowConsole(page, /WebSocket connection to .*\/ws.* failed/);
    await clinic.stopHub();
    await page.locator('.conn-reconnecting').waitFor({ timeout: 20_000 });
    const again = await clinic.api('POST', '/api/appointments/book', other.token, { doctor_id: ines.id, start, reason: 'Checkup after all' }, { 'idempotency-key': `live-again-${stamp}` });
    assert.equal((await clinic.api('GET', `/api/appointments/${again.id}`, other.token)).appointment.status, 'confirmed');
    assert.equal(await time.isVisible(), true, 'no push while the hub is away');
    clinic.startHub();
    await page.locator('.conn-connected').waitFor({ timeout: 60_000 });
    await time.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await listed(), false);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    assert.equal((await clinic.api('GET', '/api/appointments?limit=10', acct.token)).appointments.length, 0, 'the watching patient booked nothing');
    await clinic.close(page);
  });

  test('forgot password: the mailed link sets a new password that signs in', async () => {
    const acct = await newAccount('patient', 'Nell Forgetful');
    const page = await clinic.pageAs(null);
    await page.goto('/login');
    await page.getByRole('link', { name: 'Forgot password?' }).click();
    await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
    const before = clinic.mailFiles();
    await page.getByLabel('Email').fill(acct.email);
    await page.getByRole('button', { name: 'Send reset link' }).click();
    await page.getByRole('status').filter({ hasText: 'we have sent it a link' }).waitFor();
    const mail = await clinic.mailTo(acct.email, before);
    const link = /(https?:\/\/\S+\/reset-password#token=\S+)/.exec(mail)?.[1];
    assert.ok(link, `a reset link in the mail:\n${mail}`);
    await page.goto(link);
    const fresh = `new-${stamp}-password`;
    await page.getByLabel('New password (at least 10 characters)').fill(fresh);
    await page.getByLabel('New password again').fill(fresh);
    await page.getByRole('button', { name: 'Set new password' }).click();
    await page.getByRole('status').filter({ hasText: 'Your password is changed' }).waitFor();
    await screen(page, 'reset-password-done');
    await page.getByRole('link', { name: 'Sign in' }).click();
    await clinic.login(page, { ...acct, password: fresh });
    await page.reload();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // Through the API: the new password signs in, the old one no longer does.
    assert.ok(await clinic.token({ ...acct, password: fresh }));
    await assert.rejects(clinic.token(acct), /401/);
    await clinic.close(page);
  });

  test('an approved doctor sets specialties, languages and a bio; the directory and the API show them', async () => {
    const acct = await newAccount('doctor', 'Dr. Lena Sato');
    await until('the doctor profile to exist', async () => {
      const r = await raw('GET', '/api/doctors/me/profile', acct.token);
      return r.status === 200 && r.json.approved;
    });
    const page = await clinic.pageAs(acct);
    await page.getByRole('heading', { name: 'Incoming offers' }).waitFor();
    await page.getByText('Patients see you without a specialty.').waitFor();
    await page.getByRole('link', { name: 'Profile' }).click();
    await page.getByRole('heading', { name: 'Your profile' }).waitFor();
    await page.getByText('No specialty listed yet').waitFor();
    await page.getByRole('textbox', { name: /^Specialties/ }).fill('Sports Medicine, nutrition');
    await page.getByLabel('Bio', { exact: true }).fill('Runner, and a doctor of runners.');
    const languages = page.getByRole('textbox', { name: /^Languages you consult in/ });
    await languages.fill('German, Klingon');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText('“Klingon” is not a language we know').waitFor();
    await languages.fill('German, en, de');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    await screen(page, 'doctor-profile-saved');
    await page.reload();
    await page.getByRole('heading', { name: 'Your profile' }).waitFor();
    assert.equal(await page.getByRole('textbox', { name: /^Specialties/ }).inputValue(), 'Sports medicine, Nutrition');
    assert.equal(await page.getByLabel('Bio', { exact: true }).inputValue(), 'Runner, and a doctor of runners.');
    assert.equal(await languages.inputValue(), 'German, English');
    const mine = await clinic.api('GET', '/api/doctors/me/profile', acct.token);
    assert.deepEqual(mine.specialties, ['sports-medicine', 'nutrition']);
    assert.deepEqual(mine.languages, ['de', 'en']);
    assert.equal(mine.bio, 'Runner, and a doctor of runners.');

    await page.getByRole('link', { name: 'Offers' }).click();
    await page.getByRole('heading', { name: 'Incoming offers' }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(await page.getByText('Patients see you without a specialty.').count(), 0);

    const patient = await clinic.pageAs(clinic.byEmail('grace.'));
    await patient.goto('/doctors');
    await patient.getByLabel('Name').fill('Sato');
    const card = patient.getByTestId('doctor-card').filter({ hasText: 'Dr. Lena Sato' });
    await until('the doctor with her specialties in the directory', async () => {
      await patient.getByRole('button', { name: 'Search' }).click();
      await patient.waitForLoadState('networkidle');
      return (await card.count()) === 1 && /Sports medicine, Nutrition/.test(await card.innerText());
    }, 30_000);
    const listed = (await clinic.api('GET', '/api/doctors?q=Sato', await clinic.token(clinic.byEmail('grace.')))).doctors[0];
    assert.deepEqual(listed.specialties, ['sports-medicine', 'nutrition']);
    assert.match(await card.innerText(), /Speaks German, English/);
    // By language: German finds her, French does not.
    await patient.getByLabel('Language').fill('German');
    await patient.getByRole('button', { name: 'Search' }).click();
    await until('the German-speaking doctor listed', async () => (await card.count()) === 1, 30_000);
    await patient.getByLabel('Language').fill('French');
    await patient.getByRole('button', { name: 'Search' }).click();
    await patient.getByText('No doctor matches').waitFor();
    await patient.getByLabel('Language').fill('');
    await patient.getByRole('button', { name: 'Search' }).click();
    await card.waitFor();
    await card.getByRole('link', { name: 'Dr. Lena Sato' }).click();
    await patient.getByText('Runner, and a doctor of runners.').waitFor();
    assert.equal(await patient.getByTestId('doctor-languages').innerText(), 'Speaks German, English');
    await clinic.close(page, patient);
  });

  test('on a 390×844 phone the header is compact and free times show one day at a time', async () => {
    const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
    const acct = await newAccount('patient', 'Pia Phone');
    const page = await clinic.pageAs(acct, phone);
    const header = await page.locator('header.top').boundingBox();
    assert.ok(header.height <= 100, `the header is ${header.height}px tall`);
    assert.equal(await page.getByRole('link', { name: 'Appointments' }).isVisible(), false, 'links wait behind the menu');
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await screen(page, 'phone-menu-open');
    await page.getByRole('link', { name: 'Doctors' }).click();
    await page.getByRole('heading', { name: 'Find a doctor' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Menu' }).getAttribute('aria-expanded'), 'false', 'the menu closes');
    await screen(page, 'phone-directory');

    const ines = (await clinic.api('GET', '/api/doctors?q=Moreau', acct.token)).doctors[0];
    await page.goto(`/doctors/${ines.id}`);
    const picker = page.getByRole('group', { name: /Book instantly/ });
    await picker.getByRole('radio').first().waitFor();
    const visibleDays = async () => {
      const days = picker.getByTestId('slot-day');
      let n = 0;
      for (let i = 0; i < (await days.count()); i++) if (await days.nth(i).isVisible()) n++;
      return n;
    };
    assert.equal(await visibleDays(), 1, 'one day at a time');
    const firstName = await picker.getByRole('radio').filter({ visible: true }).first().getAttribute('aria-label');
    assert.match(firstName, /^[A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2}$/);
    await picker.getByRole('button', { name: 'Next day' }).click();
    assert.equal(await visibleDays(), 1);
    const next = await page.locator('.day-nav-title').textContent();
    assert.ok(!firstName.startsWith(next), `the next day shows (${next})`);
    await picker.getByRole('button', { name: 'Previous day' }).click();
    assert.ok(firstName.startsWith(await page.locator('.day-nav-title').textContent()));
    await screen(page, 'phone-slots');
    assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390);
    // Booking from the one-day view stores the chosen time.
    await picker.getByRole('button', { name: 'Next day' }).click();
    const radio = picker.getByRole('radio').filter({ visible: true }).nth(1);
    const start = await radio.getAttribute('value');
    await radio.check();
    await page.getByLabel('Reason').fill('Knee pain after running');
    await page.getByRole('button', { name: 'Book this time' }).click();
    await page.waitForURL(/\/appointments\/[A-Za-z0-9_-]+$/);
    await page.reload();
    await page.getByTestId('appointment-status').filter({ hasText: 'confirmed' }).waitFor();
    const booked = await clinic.api('GET', `/api/appointments/${page.url().split('/').pop()}`, acct.token);
    assert.equal(new Date(booked.appointment.start).getTime(), new Date(start).getTime(), 'the time chosen is the time booked');
    assert.equal(booked.appointment.doctor_id, ines.id);
    // Signing out on a phone goes through the menu too.
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to carehub' }).waitFor();
    await clinic.close(page);
    assert.deepEqual(axeProblems, []);
    assert.deepEqual(clinic.cspErrors, [], 'no page broke the Content-Security-Policy');
  });
});
