// Browser tests of the web client against a real carehub (see harness.mjs). The flows run in
// order and share one clinic: the booking made in the first is chatted about and called on later.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Clinic, checkScreen, sleep, until } from './harness.mjs';

const clinic = new Clinic();
const axeProblems = [];
let confirmedId = null;

async function screen(page, name) {
  axeProblems.push(...(await checkScreen(page, name)));
}

function nyTime(iso, zone) {
  return new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
}

/**
 * Every chat message of `room`, oldest first, read from the hub with `token` over a websocket of
 * a blank page on the clinic's origin (not through the app).
 */
async function hubHistory(token, room) {
  const ctx = await clinic.browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.goto(`${clinic.base}/readyz`);
    return await page.evaluate(
      ({ token, room }) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws`);
          const all = [];
          const page = (before) => ws.send(JSON.stringify({ type: 'chat_history', room, limit: 200, ...(before ? { before_seq: before } : {}) }));
          ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
          ws.onerror = () => reject(new Error('history socket failed'));
          ws.onmessage = (ev) => {
            const f = JSON.parse(ev.data);
            if (f.type === 'welcome') page();
            else if (f.type === 'error') reject(new Error(`${f.code}: ${f.message}`));
            else if (f.type === 'chat_history') {
              all.unshift(...f.messages);
              if (f.has_more && f.messages.length) page(f.messages[0].seq);
              else {
                ws.close();
                resolve(all);
              }
            }
          };
        }),
      { token, room },
    );
  } finally {
    await ctx.close();
  }
}

describe('web client in Chromium', { timeout: 600_000 }, () => {
  before(async () => {
    await clinic.start();
  }, { timeout: 240_000 });

  after(async () => {
    await clinic.stop();
  });

  test('a patient books a group, a doctor sees the offer live and accepts, the bell shows it without reload', async () => {
    const patient = await clinic.pageAs(clinic.byEmail('ada.'));
    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    await doctor.goto('/offers');
    await doctor.getByRole('heading', { name: 'Incoming offers' }).waitFor();
    await screen(doctor, 'doctor-offers-empty');

    await patient.goto('/appointments');
    await patient.getByRole('heading', { name: 'Appointments' }).waitFor();
    const unreadBefore = await clinic.unread(patient);

    await patient.getByRole('link', { name: 'Book' }).click();
    await patient.getByRole('heading', { name: 'Request an appointment' }).waitFor();
    await patient.getByRole('combobox', { name: /^Group/ }).selectOption({ label: 'Dermatology' });
    const reason = `Rash on the arm ${Date.now()}`;
    await patient.getByLabel('Reason').fill(reason);
    await screen(patient, 'patient-book');
    await patient.getByRole('button', { name: 'Send request' }).click();
    await patient.waitForURL(/\/appointments\/[A-Za-z0-9_-]+$/);
    confirmedId = patient.url().split('/').pop();

    // The doctor's page was open all along: the offer arrives without a reload.
    const card = doctor.getByTestId('offer').filter({ hasText: reason });
    await card.waitFor({ timeout: 30_000 });
    await screen(doctor, 'doctor-offers');
    // Both sides are named, from the appointment itself.
    const adaName = (await clinic.api('GET', '/api/me', await clinic.token(clinic.byEmail('ada.')))).display_name;
    const saraName = (await clinic.api('GET', '/api/me', await clinic.token(clinic.byEmail('sara.')))).display_name;
    assert.equal(await card.getByTestId('offer-patient').innerText(), `From ${adaName}`);
    const picker = card.getByRole('group', { name: /Free time/ });
    await picker.getByRole('radio').first().waitFor({ timeout: 20_000 });
    // Every free time is named by weekday, date and time, not by the time alone.
    const slotName = await picker.getByRole('radio').first().getAttribute('aria-label');
    assert.match(slotName, /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2}$/);
    // The accept picker is live too: time off taken elsewhere leaves it, and comes back when removed.
    const sara = await clinic.token(clinic.byEmail('sara.'));
    const last = picker.getByRole('radio').last();
    const offStart = await last.getAttribute('value');
    const offTime = picker.getByRole('radio', { name: await last.getAttribute('aria-label'), exact: true });
    const { slot_minutes: minutes } = await clinic.api('GET', '/api/doctors/me/availability', sara);
    const offEnd = new Date(new Date(offStart).getTime() + minutes * 60_000).toISOString();
    await clinic.api('POST', '/api/doctors/me/time-off', sara, { start: offStart, end: offEnd, reason: 'Training', force: false });
    await offTime.waitFor({ state: 'detached', timeout: 10_000 });
    const off = (await clinic.api('GET', '/api/doctors/me/availability', sara)).time_off.find((t) => new Date(t.start).getTime() === new Date(offStart).getTime());
    assert.ok(off, 'the time off is stored');
    await clinic.api('DELETE', `/api/doctors/me/time-off/${off.id}`, sara);
    await offTime.waitFor({ state: 'visible', timeout: 10_000 });
    await picker.getByRole('radio').first().check();
    await card.getByRole('button', { name: 'Accept' }).click();
    await card.waitFor({ state: 'detached', timeout: 20_000 });

    // The patient's page was not reloaded: the bell count rises and the status turns confirmed.
    await until('the bell to count the confirmation', async () => (await clinic.unread(patient)) > unreadBefore, 30_000);
    assert.match(await patient.getByTestId('unread-count').textContent(), /^\d+$/);
    await patient.getByTestId('appointment-status').filter({ hasText: 'confirmed' }).waitFor({ timeout: 30_000 });
    // The status is said once, not as a badge and again as text.
    assert.equal((await patient.locator('main').innerText()).match(/confirmed/gi)?.length ?? 0, 1, 'the word "confirmed" once on the page');
    await screen(patient, 'patient-appointment');
    assert.equal(await patient.getByTestId('appointment-doctor').innerText(), saraName);
    await doctor.goto(`/appointments/${confirmedId}`);
    assert.equal(await doctor.getByTestId('appointment-patient').innerText(), adaName);
    const stored = (await clinic.api('GET', `/api/appointments/${confirmedId}`, sara)).appointment;
    assert.equal(stored.patient_name, adaName);
    assert.equal(stored.doctor_name, saraName);
    await patient.getByTestId('bell').click();
    await patient.getByRole('heading', { name: 'Notifications' }).waitFor();
    await patient.getByTestId('notifications').locator('li').first().waitFor();
    // Times in notifications are in the viewer's zone, named; none is left in UTC.
    const texts = await patient.getByTestId('notifications').innerText();
    assert.doesNotMatch(texts, /\d{2}:\d{2}(–\d{2}:\d{2})? UTC/);
    await screen(patient, 'patient-notifications');
    // The server writes the accepted time in UTC; a viewer in Tokyo reads it in Tokyo time.
    const token = await clinic.token(clinic.byEmail('ada.'));
    const list = (await clinic.api('GET', '/api/notifications?limit=50', token)).notifications;
    const utc = list.map((n) => /\w{3} (\d{1,2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}) UTC/.exec(n.body)).find(Boolean);
    assert.ok(utc, 'a notification with a time in it');
    const instant = new Date(`${utc[1]} ${utc[2]} ${utc[3]} ${utc[4]}:${utc[5]} UTC`);
    const tokyo = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Asia/Tokyo', weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).format(instant);
    const abroad = await clinic.pageAs(clinic.byEmail('ada.'), { timezoneId: 'Asia/Tokyo' });
    await abroad.goto('/notifications');
    await abroad.getByTestId('notifications').getByText(`${tokyo} (Asia/Tokyo)`).first().waitFor();
    await clinic.close(abroad);
    // Once all are read, the bell shows no badge (not a red "0").
    await patient.getByRole('button', { name: 'Mark all as read' }).click();
    await patient.getByTestId('unread-count').waitFor({ state: 'detached' });
    assert.equal(await patient.getByTestId('bell').getAttribute('aria-label'), 'Notifications');
    await clinic.close(patient, doctor);
  });

  test('patient and doctor chat live, and the history survives a reload', async () => {
    assert.ok(confirmedId, 'needs the booking of the first test');
    const patient = await clinic.pageAs(clinic.byEmail('ada.'));
    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    await patient.goto(`/appointments/${confirmedId}`);
    await doctor.goto(`/appointments/${confirmedId}`);
    for (const p of [patient, doctor]) await p.getByRole('heading', { name: 'Chat' }).waitFor();
    await patient.getByRole('textbox', { name: 'Message' }).fill('Hello doctor, the rash is spreading.');
    await patient.getByRole('button', { name: 'Send' }).click();
    await doctor.getByTestId('messages').getByText('Hello doctor, the rash is spreading.').waitFor({ timeout: 20_000 });
    await doctor.getByRole('textbox', { name: 'Message' }).fill('Please send a photo before the call.');
    await doctor.getByRole('button', { name: 'Send' }).click();
    await patient.getByTestId('messages').getByText('Please send a photo before the call.').waitFor({ timeout: 20_000 });
    await screen(doctor, 'doctor-appointment-chat');
    // A reload keeps no token in the page: the refresh cookie signs the patient in again.
    await patient.reload();
    await patient.getByRole('button', { name: 'Sign out' }).waitFor();
    await patient.getByTestId('messages').getByText('Hello doctor, the rash is spreading.').waitFor({ timeout: 20_000 });
    await patient.getByTestId('messages').getByText('Please send a photo before the call.').waitFor();
    await clinic.close(patient, doctor);
  });

  test('300 messages written while the hub is down are each stored once, in order, after the reconnect; presence is shown live', async () => {
    assert.ok(confirmedId, 'needs the booking of the first test');
    const patient = await clinic.pageAs(clinic.byEmail('ada.'));
    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    const saraName = (await clinic.api('GET', '/api/me', await clinic.token(clinic.byEmail('sara.')))).display_name;
    await doctor.goto(`/appointments/${confirmedId}`);
    await patient.goto(`/appointments/${confirmedId}`);
    const presence = patient.getByTestId('presence');
    await presence.filter({ hasText: `${saraName} is online` }).waitFor({ timeout: 20_000 });

    for (const p of [patient, doctor]) {
      clinic.allow(p, '*', /\/ws/);
      clinic.allowConsole(p, /WebSocket connection to .*\/ws.* failed/);
    }
    await clinic.stopHub();
    await patient.getByText('Connecting to chat…').waitFor({ timeout: 20_000 });
    const tag = `offline-${Date.now()}`;
    const bodies = Array.from({ length: 300 }, (_, i) => `${tag} note ${String(i).padStart(3, '0')}`);
    const box = patient.getByRole('textbox', { name: 'Message' });
    for (const b of bodies) {
      await box.fill(b);
      await box.press('Enter');
    }
    assert.equal(await patient.locator('.messages li.pending').count(), 300, 'all 300 wait as "sending…"');

    clinic.startHub();
    // Stored by the hub, read back through it (a socket of the patient's own, not the page).
    const token = await clinic.token(clinic.byEmail('ada.'));
    const mine = async () => (await hubHistory(token, confirmedId)).filter((m) => m.body.startsWith(tag));
    await until('all 300 stored', async () => (await mine()).length >= 300, 90_000);
    await patient.locator('.messages li.pending').first().waitFor({ state: 'detached', timeout: 30_000 });
    // Every re-send has been answered by now: nothing more may be stored.
    await sleep(1000);
    const stored = await mine();
    assert.deepEqual(stored.map((m) => m.body), bodies, 'each once, in the order written');
    assert.equal(new Set(stored.map((m) => m.client_id)).size, 300, 'one client_id each');
    assert.deepEqual(stored.map((m) => m.seq), [...stored.map((m) => m.seq)].sort((a, b) => a - b));

    // The doctor's page closes: the patient's page is told without asking.
    await presence.filter({ hasText: `${saraName} is online` }).waitFor({ timeout: 20_000 });
    await clinic.close(doctor);
    await presence.filter({ hasText: `${saraName} is offline` }).waitFor({ timeout: 20_000 });
    await clinic.close(patient);
  });

  test('a video call connects with the fake camera, and reconnects when the hub drops the socket', async () => {
    assert.ok(confirmedId, 'needs the booking of the first test');
    const patient = await clinic.pageAs(clinic.byEmail('ada.'));
    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    await doctor.goto(`/call/${confirmedId}`);
    await patient.goto(`/call/${confirmedId}`);
    await patient.getByRole('button', { name: 'Start call' }).click();
    await doctor.getByRole('button', { name: 'Answer' }).click({ timeout: 20_000 });
    const state = (p) => p.getByTestId('call-state');
    for (const p of [patient, doctor]) await state(p).filter({ hasText: /^Connected$/ }).waitFor({ timeout: 30_000 });
    const frames = (p) => p.getByTestId('remote-video').evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames);
    for (const p of [patient, doctor]) {
      const a = await frames(p);
      await sleep(1500);
      const b = await frames(p);
      assert.ok(b > a, `remote video frames should rise: ${a} then ${b}`);
    }
    await screen(patient, 'call-connected');

    // The hub goes away: both pages lose their socket and say so (the failed reconnects are expected).
    for (const p of [patient, doctor]) {
      clinic.allow(p, '*', /\/ws/);
      clinic.allowConsole(p, /WebSocket connection to .*\/ws.* failed/);
    }
    await clinic.stopHub();
    for (const p of [patient, doctor]) await state(p).filter({ hasText: 'Reconnecting' }).waitFor({ timeout: 20_000 });
    await screen(doctor, 'call-reconnecting');
    clinic.startHub();
    for (const p of [patient, doctor]) await state(p).filter({ hasText: /^Connected$/ }).waitFor({ timeout: 60_000 });
    const a = await frames(patient);
    await sleep(1500);
    assert.ok((await frames(patient)) > a, 'remote video plays again after the reconnect');
    await patient.getByRole('button', { name: 'Hang up' }).click();
    await state(doctor).filter({ hasText: 'Call ended' }).waitFor({ timeout: 20_000 });
    await clinic.close(patient, doctor);
  });

  test('an admin creates a group and approves a doctor who then appears in the directory', async () => {
    const email = `new.doctor.${Date.now()}@example.test`;
    const signup = await clinic.pageAs(null);
    await signup.goto('/signup');
    await screen(signup, 'signup');
    await signup.getByLabel('Name').fill('Dr. Nadia Okafor');
    await signup.getByLabel('Email').fill(email);
    await signup.getByLabel(/Password/).fill('a long enough password');
    await signup.getByLabel('doctor').check();
    await signup.getByRole('button', { name: 'Create account' }).click();
    await signup.getByRole('heading', { name: 'Account requested' }).waitFor();
    await clinic.close(signup);

    const admin = await clinic.pageAs(clinic.account('admin'));
    await admin.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await screen(admin, 'admin-dashboard');
    await admin.getByRole('link', { name: 'Groups' }).click();
    await admin.getByRole('heading', { name: 'New group' }).waitFor();
    await admin.getByLabel('Name').fill('Weekend clinic');
    await admin.getByLabel('Specialty').fill('general-practice');
    await admin.getByLabel('Strategy').selectOption('least_loaded');
    await admin.getByLabel('Dr. Kofi Mensah').check();
    await admin.getByRole('button', { name: 'Create group' }).click();
    await admin.getByRole('list', { name: 'Groups' }).getByRole('heading', { name: 'Weekend clinic' }).waitFor();
    await screen(admin, 'admin-groups');

    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('Status').selectOption('pending');
    const row = admin.locator(`tr[data-email="${email}"]`);
    await row.waitFor({ timeout: 30_000 });
    await screen(admin, 'admin-users');
    await row.getByRole('button', { name: 'Approve Dr. Nadia Okafor' }).click();
    await row.waitFor({ state: 'detached' });
    for (const path of ['/admin/appointments', '/admin/audit']) {
      await admin.goto(path);
      await admin.locator('h1').waitFor();
      await screen(admin, `admin-${path.split('/').pop()}`);
    }
    // The audit log names the doctor who was approved and the admin who did it.
    const adminName = (await clinic.api('GET', '/api/me', await clinic.token(clinic.account('admin')))).display_name;
    const approval = admin.locator('tr').filter({ hasText: 'user.approve' }).filter({ hasText: 'Dr. Nadia Okafor' });
    await until('the approval in the audit log, with names', async () => {
      await admin.reload();
      await admin.locator('h1').waitFor();
      return (await approval.count()) > 0 && (await approval.first().innerText()).includes(`${adminName} (admin)`);
    }, 30_000);

    const patient = await clinic.pageAs(clinic.byEmail('grace.'));
    await patient.goto('/doctors');
    await patient.getByLabel('Name').fill('Okafor');
    await until(
      'the approved doctor in the directory',
      async () => {
        await patient.getByRole('button', { name: 'Search' }).click();
        await sleep(300);
        return patient.getByRole('link', { name: 'Dr. Nadia Okafor' }).isVisible();
      },
      30_000,
    );
    await screen(patient, 'patient-directory');
    await clinic.close(admin, patient);
  });

  test('a booking completed with the keyboard alone', async () => {
    const patient = await clinic.pageAs(clinic.byEmail('grace.'));
    const doc = clinic.byEmail('ines.');
    const token = await clinic.token(clinic.byEmail('grace.'));
    const list = await clinic.api('GET', '/api/doctors?q=Moreau', token);
    const ines = list.doctors[0];
    assert.ok(ines, `${doc.name} in the directory`);
    await patient.goto(`/doctors/${ines.id}`);
    await patient.getByRole('group', { name: /Book instantly/ }).waitFor();
    await screen(patient, 'patient-doctor-instant');
    const k = patient.keyboard;
    let reached = false;
    for (let i = 0; i < 60 && !reached; i++) {
      await k.press('Tab');
      reached = await patient.evaluate(() => document.activeElement?.getAttribute('name') === 'slot');
    }
    assert.ok(reached, 'Tab reaches the first free time');
    await k.press('Space');
    await k.press('Tab');
    assert.equal(await patient.evaluate(() => document.activeElement?.tagName), 'TEXTAREA');
    await k.type('Yearly check-up');
    await k.press('Tab');
    await k.press('Enter');
    await patient.waitForURL(/\/appointments\/[A-Za-z0-9_-]+$/, { timeout: 20_000 });
    await patient.getByTestId('appointment-status').filter({ hasText: 'confirmed' }).waitFor({ timeout: 20_000 });
    await clinic.close(patient);
  });

  test('a patient on a 390×844 phone screen requests an appointment by specialty', async () => {
    const patient = await clinic.pageAs(clinic.byEmail('alan.'), { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await patient.goto('/book');
    await patient.getByLabel('any doctor of a specialty').check();
    await patient.getByRole('combobox', { name: /^Specialty/ }).selectOption('cardiology');
    await patient.getByLabel('Reason').fill('Palpitations at night');
    await screen(patient, 'phone-book');
    const wide = await patient.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `no sideways scrolling on a phone (page is ${wide}px wide)`);
    await patient.getByRole('button', { name: 'Send request' }).click();
    await patient.waitForURL(/\/appointments\/[A-Za-z0-9_-]+$/);
    await patient.getByTestId('appointment-status').waitFor();
    await patient.goto('/profile');
    await patient.getByRole('heading', { name: 'Medical history', exact: true }).waitFor();
    await screen(patient, 'phone-profile');
    assert.ok((await patient.evaluate(() => document.documentElement.scrollWidth)) <= 390);
    await clinic.close(patient);
  });

  test('a viewer in America/New_York sees a Europe/Berlin doctor’s slots converted, with the zone named', async () => {
    const zone = 'America/New_York';
    const patient = await clinic.pageAs(clinic.byEmail('alan.'), { timezoneId: zone });
    const token = await clinic.token(clinic.byEmail('alan.'));
    const kofi = (await clinic.api('GET', '/api/doctors?q=Mensah', token)).doctors[0];
    const from = new Date(Date.now() + 3600_000).toISOString();
    const to = new Date(Date.now() + 8 * 86400_000).toISOString();
    const slots = await clinic.api('GET', `/api/doctors/${kofi.id}/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, token);
    assert.equal(slots.time_zone, 'Europe/Berlin');
    const first = slots.slots[0].start;
    // Today's first free time depends on the hour the suite runs; every later day opens at 09:00 Berlin time.
    const berlinDay = (iso) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(new Date(iso));
    const opening = slots.slots.find((s) => berlinDay(s.start) > berlinDay(from));
    assert.ok(opening, 'the week holds a free time after today');
    assert.equal(nyTime(opening.start, 'Europe/Berlin'), '09:00', 'a later day opens at 09:00 Berlin time');
    await patient.goto(`/doctors/${kofi.id}`);
    await patient.getByText('Works in Europe/Berlin').waitFor();
    const range = patient.getByTestId('slot-range').first();
    await range.waitFor();
    const text = await range.textContent();
    assert.equal(text, `${nyTime(first, zone)}–${nyTime(slots.slots.filter((s) => s.start.slice(0, 10) === first.slice(0, 10)).at(-1).end, zone)} (${zone})`);
    assert.notEqual(nyTime(opening.start, zone), '09:00', 'the opening is shown in the viewer’s zone, not the doctor’s');
    await screen(patient, 'patient-doctor-new-york');
    await clinic.close(patient);
  });

  test('the remaining main screens pass axe-core with no serious or critical issue', async () => {
    const login = await clinic.pageAs(null);
    await login.goto('/login');
    await login.getByRole('heading', { name: 'Sign in to carehub' }).waitFor();
    await screen(login, 'login');
    await login.getByRole('link', { name: 'Forgot password?' }).click();
    await login.getByRole('heading', { name: 'Reset your password' }).waitFor();
    await screen(login, 'forgot-password');
    await login.goto('/reset-password#token=not-a-real-token');
    await login.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await screen(login, 'reset-password');
    await clinic.close(login);
    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    for (const [path, name] of [
      ['/schedule', 'doctor-schedule'],
      ['/availability', 'doctor-availability'],
      ['/appointments', 'doctor-appointments'],
      ['/profile', 'doctor-profile'],
    ]) {
      await doctor.goto(path);
      await doctor.locator('h1').waitFor();
      await screen(doctor, name);
    }
    await clinic.close(doctor);
    const patient = await clinic.pageAs(clinic.byEmail('ada.'));
    for (const [path, name] of [
      ['/appointments', 'patient-appointments'],
      ['/profile', 'patient-profile'],
    ]) {
      await patient.goto(path);
      await patient.locator('h1').waitFor();
      await screen(patient, name);
    }
    await clinic.close(patient);
    assert.deepEqual(axeProblems, []);
    assert.deepEqual(clinic.cspErrors, [], 'no page broke the Content-Security-Policy');
  });
});
