// Browser tests of the operations each role meets after the main flows: accounts, time off,
// notifications, declines and re-routes, moves and closings, the password, a second tab. Each
// acts through the page as a person would, then reads the stored state through the API and
// reloads. Runs against its own clinic (see harness.mjs).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Clinic, checkScreen, repo, until } from './harness.mjs';

const clinic = new Clinic();
const axeProblems = [];
const stamp = Date.now().toString(36);
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
let keyN = 0;
const key = () => ({ 'idempotency-key': `ops-${stamp}-${++keyN}` });

async function screen(page, name) {
  axeProblems.push(...(await checkScreen(page, name)));
}

/** With SCREENSHOTS=1, the README's pictures of a screen, at 1280×800 (scrolled to `focus`). */
async function docShot(page, name, focus) {
  if (!process.env.SCREENSHOTS) return;
  const dir = join(repo, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.setViewportSize(DESKTOP);
  await page.waitForLoadState('networkidle').catch(() => {});
  if (focus) await focus.scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(dir, `${name}.png`) });
}

/** A new account made through the API (doctors are approved by the demo admin). */
async function newAccount(role, name, { approve = true } = {}) {
  const email = `${name.toLowerCase().replace(/[^a-z]+/g, '.')}.${stamp}@example.test`;
  const acct = { role, email, password: `pw-${stamp}-long-enough`, name };
  await clinic.api('POST', '/api/auth/register', null, { email, password: acct.password, display_name: name, role });
  const admin = await clinic.token(clinic.account('admin'));
  acct.id = (
    await until(`${name} in the user list`, async () => {
      const r = await clinic.api('GET', `/api/admin/users?q=${encodeURIComponent(email)}`, admin);
      return r.users[0];
    })
  ).id;
  if (role === 'doctor' && !approve) return acct;
  if (role === 'doctor') await clinic.api('POST', `/api/admin/users/${acct.id}/approve`, admin, {});
  acct.token = await clinic.token(acct);
  return acct;
}

/** `iso` as a datetime-local value in `zone`. */
function wall(iso, zone) {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso))
      .map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

const same = (a, b) => new Date(a).getTime() === new Date(b).getTime();

async function doctorByName(q, token) {
  return (await clinic.api('GET', `/api/doctors?q=${encodeURIComponent(q)}`, token)).doctors[0];
}

/** Free times of a doctor over the next `days` days. */
async function freeSlots(doctorId, token, days = 8) {
  const from = new Date(Date.now() + 3600_000).toISOString();
  const to = new Date(Date.now() + days * 86400_000).toISOString();
  return (await clinic.api('GET', `/api/doctors/${doctorId}/slots?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, token)).slots;
}

const detail = async (id, token) => (await clinic.api('GET', `/api/appointments/${id}`, token)).appointment;

/**
 * Appointments that start within two minutes, so a doctor can complete them or mark them a
 * no-show (only once they have started): each of two new doctors works a few minutes today
 * (UTC) from the next whole minute, and a patient books that first time.
 */
const soon = {};

async function bookSoon() {
  const out = [];
  for (const [name, who] of [['Dr. Cleo Closing', 'Otto Soon'], ['Dr. Max Missed', 'Mo Missing']]) {
    const patient = await newAccount('patient', who);
    const doc = await newAccount('doctor', name);
    const view = await until(`${name}'s availability`, async () => clinic.api('GET', '/api/doctors/me/availability', doc.token));
    const start = new Date(Math.ceil((Date.now() + 40_000) / 60_000) * 60_000);
    const hhmm = (d) => d.toISOString().slice(11, 16);
    const end = new Date(start.getTime() + 10 * 60_000);
    assert.equal(end.toISOString().slice(0, 10), start.toISOString().slice(0, 10), 'the hours stay within one UTC day');
    const weekday = start.toLocaleDateString('en-GB', { weekday: 'long', timeZone: 'UTC' }).toLowerCase();
    await clinic.api('PUT', '/api/doctors/me/availability', doc.token, {
      expected_version: view.version,
      time_zone: 'UTC',
      weekly: [{ weekday, start: hhmm(start), end: hhmm(end) }],
      slot_minutes: 5,
      auto_accept: true,
    });
    const booked = await until(`a booking with ${name}`, async () =>
      clinic.api('POST', '/api/appointments/book', patient.token, { doctor_id: doc.id, start: start.toISOString(), reason: `Soon with ${name}` }, key()),
    );
    out.push({ doc, patient, id: booked.id, start: start.toISOString() });
  }
  // The first patient's history, for the doctor to read.
  const patient = out[0].patient;
  const r = await fetch(`${clinic.base}/api/patients/me/record`, { headers: { authorization: `Bearer ${patient.token}` } });
  await clinic.api('PUT', '/api/patients/me/record', patient.token, { blood_type: 'B-', notes: 'Asthma since childhood.' }, { 'if-match': r.headers.get('etag') });
  await clinic.api(
    'PUT',
    '/api/patients/me/profile',
    patient.token,
    { date_of_birth: '1979-03-14', insurance: [{ rank: 'primary', payer: 'Northwind Health', member_id: 'NWH-0042 7781', holder: 'Self Payer', relationship: 'self', valid_to: '2027-12-31' }] },
    { 'if-match': '*' },
  );
  Object.assign(soon, { patient, complete: out[0], noShow: out[1] });
}

describe('operations in Chromium, checked through the API', { timeout: 900_000 }, () => {
  before(async () => {
    await clinic.start();
    await bookSoon();
  }, { timeout: 300_000 });

  after(async () => {
    await clinic.stop();
  });

  test('an admin rejects a pending doctor, disables a patient and enables them again; each is stored and survives a reload', async () => {
    const pending = await newAccount('doctor', 'Dr. Rex Rejected', { approve: false });
    const patient = await newAccount('patient', 'Dora Disabled');
    const adminToken = await clinic.token(clinic.account('admin'));
    const status = async (id) => (await clinic.api('GET', `/api/admin/users/${id}`, adminToken)).status;
    const admin = await clinic.pageAs(clinic.account('admin'));
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('Search').fill(stamp);
    const row = (email) => admin.locator(`tr[data-email="${email}"]`);
    await row(pending.email).waitFor();
    await row(pending.email).getByRole('button', { name: 'Reject Dr. Rex Rejected' }).click();
    await admin.getByRole('status').filter({ hasText: 'Dr. Rex Rejected: rejected.' }).waitFor();
    assert.equal(await status(pending.id), 'rejected');

    await row(patient.email).getByRole('button', { name: 'Disable Dora Disabled' }).click();
    await admin.getByRole('status').filter({ hasText: 'Dora Disabled: disabled.' }).waitFor();
    assert.equal(await status(patient.id), 'disabled');
    await assert.rejects(clinic.token(patient), /403|401/, 'a disabled account cannot sign in');
    await admin.reload();
    await admin.getByLabel('Search').fill(stamp);
    await row(patient.email).locator('.badge', { hasText: /^disabled$/ }).waitFor();
    await row(pending.email).locator('.badge', { hasText: /^rejected$/ }).waitFor();
    await screen(admin, 'admin-users-disabled');
    // With the keyboard: focus the button and press Enter.
    await row(patient.email).getByRole('button', { name: 'Enable Dora Disabled' }).focus();
    await admin.keyboard.press('Enter');
    await admin.getByRole('status').filter({ hasText: 'Dora Disabled: enabled.' }).waitFor();
    assert.equal(await status(patient.id), 'active');
    assert.ok(await clinic.token(patient), 'an enabled account signs in again');
    await admin.reload();
    await admin.getByLabel('Search').fill(stamp);
    await row(patient.email).locator('.badge', { hasText: /^active$/ }).waitFor();
    await clinic.close(admin);
  });

  test('an admin disabling a doctor with a booked appointment sees it listed (409); disabled anyway it is cancelled with the reason', async () => {
    const doc = await newAccount('doctor', 'Dr. Dana Departing');
    const patient = await newAccount('patient', 'Pia Patient');
    const view = await until('the new doctor’s availability', async () => clinic.api('GET', '/api/doctors/me/availability', doc.token));
    const days = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
    await clinic.api('PUT', '/api/doctors/me/availability', doc.token, {
      expected_version: view.version,
      time_zone: 'UTC',
      weekly: days.map((weekday) => ({ weekday, start: '09:00', end: '12:00' })),
      slot_minutes: 30,
      auto_accept: true,
    });
    const slot = (await freeSlots(doc.id, patient.token))[0];
    const booked = await clinic.api('POST', '/api/appointments/book', patient.token, { doctor_id: doc.id, start: slot.start, reason: 'Follow-up' }, key());
    const adminToken = await clinic.token(clinic.account('admin'));
    const status = async () => (await clinic.api('GET', `/api/admin/users/${doc.id}`, adminToken)).status;

    const viewer = 'America/New_York';
    const admin = await clinic.pageAs(clinic.account('admin'), { timezoneId: viewer });
    clinic.allow(admin, 409, /\/api\/admin\/users\/[^/]+\/disable$/);
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByLabel('Search').fill(doc.email);
    const row = admin.locator(`tr[data-email="${doc.email}"]`);
    await row.getByRole('button', { name: 'Disable Dr. Dana Departing' }).click();
    await admin.getByRole('alert').filter({ hasText: 'This doctor has confirmed appointments.' }).waitFor();
    const clash = admin.getByTestId('disable-clash');
    const at = (iso, o) => new Intl.DateTimeFormat('en-GB', { timeZone: viewer, hourCycle: 'h23', hour: '2-digit', minute: '2-digit', ...o }).format(new Date(iso));
    const shown = `Pia Patient: ${at(slot.start, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' })}–${at(slot.end)} (${viewer})`;
    await clash.getByRole('listitem').filter({ hasText: shown }).waitFor();
    assert.equal(await clash.getByRole('listitem').count(), 1, 'exactly the booked appointment is listed');
    await screen(admin, 'admin-disable-clash');
    await docShot(admin, 'admin-disable-clash', clash);
    assert.equal(await status(), 'active', 'nothing changed without the choice');
    assert.equal((await detail(booked.id, patient.token)).status, 'confirmed');

    // Keeping the account closes the list and changes nothing.
    await clash.getByRole('button', { name: 'Keep the account active' }).click();
    await clash.waitFor({ state: 'detached' });
    assert.equal(await status(), 'active');

    await row.getByRole('button', { name: 'Disable Dr. Dana Departing' }).click();
    await clash.getByLabel('Reason told to each patient (optional)').fill('moving abroad');
    await clash.getByRole('button', { name: 'Disable and cancel this appointment' }).click();
    await admin.getByRole('status').filter({ hasText: 'Dr. Dana Departing: disabled; 1 appointment cancelled.' }).waitFor();
    assert.equal(await status(), 'disabled');
    const cancelled = await detail(booked.id, patient.token);
    assert.equal(cancelled.status, 'cancelled');
    assert.match(cancelled.close_reason ?? '', /moving abroad/, 'the patient is told the reason');
    await admin.reload();
    await admin.getByLabel('Search').fill(doc.email);
    await row.locator('.badge', { hasText: /^disabled$/ }).waitFor();
    await clinic.close(admin);
  });

  test('a doctor’s time off over a booked appointment lists it (409); taken anyway it cancels it; another is added and removed', async () => {
    const patient = await newAccount('patient', 'Tia Timeoff');
    const inesAcct = clinic.byEmail('ines.');
    const ines = await doctorByName('Moreau', patient.token);
    const inesToken = await clinic.token(inesAcct);
    const { time_zone: zone } = await clinic.api('GET', '/api/doctors/me/availability', inesToken);
    const slot = (await freeSlots(ines.id, patient.token))[0];
    const booked = await clinic.api('POST', '/api/appointments/book', patient.token, { doctor_id: ines.id, start: slot.start, reason: 'Before the holiday' }, key());

    // The viewer is in another zone than the doctor's hours: the form takes the doctor's zone,
    // the list of appointments shows the viewer's.
    const viewer = zone === 'Asia/Tokyo' ? 'America/Sao_Paulo' : 'Asia/Tokyo';
    const page = await clinic.pageAs(inesAcct, { timezoneId: viewer });
    await page.getByRole('link', { name: 'Availability' }).click();
    await page.getByRole('heading', { name: 'Time off' }).waitFor();
    clinic.allow(page, 409, /\/api\/doctors\/me\/time-off$/);
    const asked = [];
    page.on('request', (r) => asked.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.getByLabel(/^From \(/).fill(wall(slot.start, zone));
    await page.getByLabel(/^To \(/).fill(wall(slot.end, zone));
    await page.getByLabel('Reason', { exact: true }).fill('Conference');
    await page.getByRole('button', { name: 'Add time off' }).click();
    await page.getByRole('alert').filter({ hasText: 'This time off overlaps confirmed appointments.' }).waitFor();
    const clash = page.getByTestId('time-off-clash');
    // The list is the 409's: the patient's name and the time in the viewer's zone.
    const at = (iso, o) => new Intl.DateTimeFormat('en-GB', { timeZone: viewer, hourCycle: 'h23', hour: '2-digit', minute: '2-digit', ...o }).format(new Date(iso));
    const shown = `Tia Timeoff: ${at(slot.start, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' })}–${at(slot.end)} (${viewer})`;
    await clash.getByRole('listitem').filter({ hasText: shown }).waitFor();
    assert.equal(await clash.getByRole('listitem').count(), 1, 'exactly the one booked appointment is listed');
    assert.deepEqual(
      asked.filter((r) => r.startsWith('GET /api/appointments')),
      [],
      'the list comes from the 409 body, not from reading the appointments',
    );
    await screen(page, 'doctor-time-off-clash');
    await docShot(page, 'time-off-clash', clash);
    let view = await clinic.api('GET', '/api/doctors/me/availability', inesToken);
    assert.ok(!view.time_off.some((t) => same(t.start, slot.start)), 'nothing added without the choice');
    assert.equal((await detail(booked.id, patient.token)).status, 'confirmed');

    await clash.getByRole('button', { name: 'Take the time off and cancel this appointment' }).click();
    await page.getByRole('status').filter({ hasText: 'Time off added; 1 appointment cancelled.' }).waitFor();
    view = await clinic.api('GET', '/api/doctors/me/availability', inesToken);
    const added = view.time_off.find((t) => same(t.start, slot.start));
    assert.ok(added, 'the time off is stored');
    assert.equal(added.reason, 'Conference');
    assert.equal((await detail(booked.id, patient.token)).status, 'cancelled');

    // One over no appointment, three weeks ahead at night: added at once, then removed.
    const far = new Date(Date.now() + 21 * 86400_000);
    far.setUTCHours(1, 0, 0, 0);
    const farEnd = new Date(far.getTime() + 2 * 3600_000);
    await page.getByLabel(/^From \(/).fill(wall(far.toISOString(), zone));
    await page.getByLabel(/^To \(/).fill(wall(farEnd.toISOString(), zone));
    await page.getByLabel('Reason', { exact: true }).fill('Night off');
    await page.getByLabel('Reason', { exact: true }).press('Enter');
    await page.getByRole('status').filter({ hasText: 'Time off added.' }).waitFor();
    await page.reload();
    await page.getByText('Night off').waitFor();
    view = await clinic.api('GET', '/api/doctors/me/availability', inesToken);
    const night = view.time_off.find((t) => t.reason === 'Night off');
    assert.ok(night && same(night.start, far.toISOString()) && same(night.end, farEnd.toISOString()), 'stored as typed, in the doctor’s zone');
    await page.getByRole('listitem').filter({ hasText: 'Night off' }).getByRole('button', { name: /^Remove/ }).click();
    await page.getByRole('status').filter({ hasText: 'Time off removed.' }).waitFor();
    view = await clinic.api('GET', '/api/doctors/me/availability', inesToken);
    assert.ok(!view.time_off.some((t) => t.reason === 'Night off'), 'removed from the store');
    await page.reload();
    await page.getByRole('heading', { name: 'Time off' }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(await page.getByText('Night off').count(), 0);
    await clinic.close(page);
  });

  test('a patient marks a notification read and unread, deletes one, and marks all as read', async () => {
    const patient = await newAccount('patient', 'Nora Notified');
    const ines = await doctorByName('Moreau', patient.token);
    const slots = await freeSlots(ines.id, patient.token);
    for (const s of slots.slice(-3)) await clinic.api('POST', '/api/appointments/book', patient.token, { doctor_id: ines.id, start: s.start, reason: 'Checkup' }, key());
    const list = async () => (await clinic.api('GET', '/api/notifications?limit=50', patient.token)).notifications;
    await until('three notifications', async () => (await list()).length >= 3, 30_000);
    const page = await clinic.pageAs(patient);
    await page.getByTestId('bell').click();
    await page.getByRole('heading', { name: 'Notifications' }).waitFor();
    const items = page.getByTestId('notifications').locator('li');
    await items.first().waitFor();
    const n0 = await items.count();
    await items.first().getByRole('button', { name: 'Mark read' }).click();
    await until('the first one stored as read', async () => (await list())[0].read_at);
    await items.first().getByRole('button', { name: 'Mark unread' }).waitFor();
    await items.first().getByRole('button', { name: 'Mark unread' }).click();
    await until('the first one stored as unread', async () => !(await list())[0].read_at);
    await page.reload();
    await items.first().getByRole('button', { name: 'Mark read' }).waitFor();
    const gone = (await list())[1].id;
    await items.nth(1).getByRole('button', { name: 'Delete' }).click();
    await until('one notification fewer on the page', async () => (await items.count()) === n0 - 1);
    assert.ok(!(await list()).some((n) => n.id === gone), 'deleted from the store');
    await page.getByRole('button', { name: 'Mark all as read' }).click();
    await page.getByTestId('unread-count').waitFor({ state: 'detached' });
    assert.equal((await clinic.api('GET', '/api/notifications/unread-count', patient.token)).unread, 0);
    assert.ok((await list()).every((n) => n.read_at), 'every one stored as read');
    await page.reload();
    await items.first().waitFor();
    assert.equal(await page.getByRole('button', { name: 'Mark read' }).count(), 0);
    assert.equal(await items.count(), n0 - 1);
    await clinic.close(page);
  });

  test('a doctor declines an offer; an admin re-routes one open request, declines another and edits a group', async () => {
    const patient = await newAccount('patient', 'Remy Routed');
    const sara = await doctorByName('Sara', patient.token);
    const windowStart = new Date(Date.now() + 2 * 86400_000).toISOString();
    const windowEnd = new Date(Date.now() + 9 * 86400_000).toISOString();
    const ask = (reason, target) => clinic.api('POST', '/api/appointments', patient.token, { reason, target, window_start: windowStart, window_end: windowEnd }, key());
    const toSara = await ask(`Mole check ${stamp}`, { doctor: sara.id });
    const adminToken = await clinic.token(clinic.account('admin'));
    const groups = (await clinic.api('GET', '/api/admin/groups', adminToken)).groups;
    const [g1, g2] = groups;
    const reroute = await ask(`Second opinion ${stamp}`, { group: g1.id });
    const decline = await ask(`Not for us ${stamp}`, { group: g1.id });

    const doctor = await clinic.pageAs(clinic.byEmail('sara.'));
    await doctor.goto('/offers');
    const offer = doctor.getByTestId('offer').filter({ hasText: `Mole check ${stamp}` });
    await offer.waitFor({ timeout: 30_000 });
    await offer.getByLabel('Reason to decline').fill('Not my field; a dermatologist will see you.');
    await offer.getByRole('button', { name: 'Decline' }).click();
    await offer.waitFor({ state: 'detached' });
    // The patient's view leaves the offers out: an admin reads them.
    const declined = await clinic.api('GET', `/api/appointments/${toSara.id}`, adminToken);
    assert.ok(declined.offers.some((o) => o.doctor_id === sara.id && o.status === 'declined' && o.reason === 'Not my field; a dermatologist will see you.'), `the offer is stored as declined, with the reason: ${JSON.stringify(declined.offers)}`);
    await doctor.reload();
    await doctor.getByRole('heading', { name: 'Incoming offers' }).waitFor();
    await doctor.waitForLoadState('networkidle');
    assert.equal(await doctor.getByTestId('offer').filter({ hasText: `Mole check ${stamp}` }).count(), 0);
    await clinic.close(doctor);

    const admin = await clinic.pageAs(clinic.account('admin'));
    await admin.getByRole('link', { name: 'Appointments' }).click();
    const card = (text) => admin.getByRole('listitem').filter({ hasText: text });
    await card(`Second opinion ${stamp}`).waitFor();
    await card(`Second opinion ${stamp}`).getByLabel('Re-route to group').selectOption({ label: g2.name });
    await card(`Second opinion ${stamp}`).getByRole('button', { name: /^Re-route/ }).click();
    await admin.getByRole('status').filter({ hasText: 're-routed.' }).waitFor();
    assert.equal((await detail(reroute.id, adminToken)).group_id, g2.id, 'the request now goes to the other group');

    // Declining needs a reason: without one the page says so, and nothing is sent.
    await card(`Not for us ${stamp}`).getByRole('button', { name: /^Decline/ }).click();
    await admin.getByRole('alert').filter({ hasText: 'Give a reason to decline' }).waitFor();
    assert.notEqual((await detail(decline.id, adminToken)).status, 'declined');
    await card(`Not for us ${stamp}`).getByLabel('Reason to decline').fill('We do not treat this at the clinic.');
    await card(`Not for us ${stamp}`).getByRole('button', { name: /^Decline/ }).click();
    await admin.getByRole('status').filter({ hasText: 'declined; the patient is told why.' }).waitFor();
    const stored = await detail(decline.id, adminToken);
    assert.equal(stored.status, 'declined');
    assert.equal(stored.close_reason, 'We do not treat this at the clinic.');
    await screen(admin, 'admin-appointments-decline');
    await docShot(admin, 'admin-decline');
    await admin.reload();
    await card(`Not for us ${stamp}`).getByText('declined').waitFor();
    assert.equal(await card(`Not for us ${stamp}`).getByRole('button', { name: /^Decline/ }).count(), 0);

    // Editing a group: its deadline and members.
    await admin.getByRole('link', { name: 'Groups' }).click();
    await admin.getByRole('button', { name: `Edit ${g2.name}` }).click();
    await admin.getByRole('heading', { name: `Edit ${g2.name}` }).waitFor();
    await admin.getByLabel('Minutes to accept an offer').fill('45');
    await admin.getByRole('button', { name: 'Save group' }).click();
    await admin.getByRole('status').filter({ hasText: `Group “${g2.name}” saved.` }).waitFor();
    const g = (await clinic.api('GET', '/api/admin/groups', adminToken)).groups.find((x) => x.id === g2.id);
    assert.equal(g.accept_deadline_secs, 45 * 60);
    assert.deepEqual([...g.members].sort(), [...g2.members].sort(), 'the members stay');
    await admin.reload();
    await admin.getByRole('list', { name: 'Groups' }).getByRole('listitem').filter({ hasText: g2.name }).getByText('45 min to accept').waitFor();
    await clinic.close(admin);
  });

  test('reschedule both ways: the patient asks for a new window and the doctor moves it (or declines the move); the doctor proposes a time, the patient keeps theirs, then takes the next; then the patient cancels', async () => {
    const patient = await newAccount('patient', 'Ria Moved');
    const inesAcct = clinic.byEmail('ines.');
    const inesToken = await clinic.token(inesAcct);
    const ines = await doctorByName('Moreau', patient.token);
    const slot = (await freeSlots(ines.id, patient.token))[1];
    const booked = await clinic.api('POST', '/api/appointments/book', patient.token, { doctor_id: ines.id, start: slot.start, reason: 'Moving target' }, key());
    const utc = { timezoneId: 'UTC' };
    const page = await clinic.pageAs(patient, utc);
    const doctor = await clinic.pageAs(inesAcct, utc);

    // The patient asks: a window of three days from two days after the booked time (it holds a working day).
    const ws = new Date(new Date(slot.start).getTime() + 2 * 86400_000);
    const we = new Date(ws.getTime() + 3 * 86400_000);
    await page.goto(`/appointments/${booked.id}`);
    await page.getByLabel(/^New earliest/).fill(wall(ws.toISOString(), 'UTC'));
    await page.getByLabel(/^New latest/).fill(wall(we.toISOString(), 'UTC'));
    await page.getByRole('button', { name: 'Ask to reschedule' }).click();
    await page.getByRole('status').filter({ hasText: 'Reschedule asked for' }).waitFor();
    let a = await detail(booked.id, patient.token);
    assert.equal(a.pending_change.by, 'patient');
    assert.ok(same(a.pending_change.window_start, ws.toISOString()) && same(a.pending_change.window_end, we.toISOString()), 'the asked window is stored');
    await page.reload();
    await page.getByText('Waiting for the doctor to choose a time in your window.').waitFor();

    // The doctor moves it to one of their free times in that window.
    await doctor.goto(`/appointments/${booked.id}`);
    const movePicker = doctor.getByRole('group', { name: /Free time/ });
    const moveTo = movePicker.getByRole('radio').first();
    await moveTo.waitFor({ timeout: 20_000 });
    const moved = await moveTo.getAttribute('value');
    await moveTo.check();
    await doctor.getByRole('button', { name: 'Move to this time' }).click();
    await doctor.getByRole('heading', { name: 'Reschedule in progress' }).waitFor({ state: 'detached' });
    a = await detail(booked.id, patient.token);
    assert.ok(same(a.start, moved), 'moved to the time the doctor chose');
    assert.equal(a.pending_change ?? null, null);
    assert.ok(new Date(moved) >= ws && new Date(moved) < we, 'inside the asked window');

    // Asked once more (the three days after), the doctor declines the move: the time stays.
    await page.reload();
    await page.getByLabel(/^New earliest/).fill(wall(we.toISOString(), 'UTC'));
    await page.getByLabel(/^New latest/).fill(wall(new Date(we.getTime() + 3 * 86400_000).toISOString(), 'UTC'));
    await page.getByRole('button', { name: 'Ask to reschedule' }).click();
    await page.getByRole('status').filter({ hasText: 'Reschedule asked for' }).waitFor();
    await doctor.reload();
    await doctor.getByLabel('Reason to decline the move').fill('That week I am away.');
    await doctor.getByRole('button', { name: 'Decline the move' }).click();
    await doctor.getByRole('heading', { name: 'Reschedule in progress' }).waitFor({ state: 'detached' });
    a = await detail(booked.id, patient.token);
    assert.equal(a.pending_change ?? null, null, 'the move is declined');
    assert.ok(same(a.start, moved), 'the time stays');
    assert.equal(a.status, 'confirmed');

    // The doctor proposes another time; the patient keeps the current one.
    const propose = async (n) => {
      await doctor.reload();
      await doctor.getByRole('button', { name: 'Propose another time' }).click();
      const radio = doctor.getByRole('group', { name: /Free time/ }).getByRole('radio').nth(n);
      await radio.waitFor({ timeout: 20_000 });
      const start = await radio.getAttribute('value');
      await radio.check();
      await doctor.getByRole('button', { name: 'Propose this time' }).click();
      await doctor.getByText('Waiting for the patient to answer.').waitFor();
      const stored = await detail(booked.id, inesToken);
      assert.equal(stored.pending_change.by, 'doctor');
      assert.ok(same(stored.pending_change.start, start), 'the proposed time is stored');
      return start;
    };
    await propose(0);
    await page.reload();
    await page.getByText(/^Proposed time:/).waitFor();
    await screen(page, 'patient-proposal');
    await page.getByRole('button', { name: 'Keep the current time' }).click();
    await page.getByRole('heading', { name: 'Reschedule in progress' }).waitFor({ state: 'detached' });
    a = await detail(booked.id, patient.token);
    assert.equal(a.pending_change ?? null, null, 'nothing pending');
    assert.ok(same(a.start, moved), 'the time is unchanged');
    assert.equal(a.status, 'confirmed');

    // Proposed again, the patient takes it.
    const proposed = await propose(1);
    await page.reload();
    await page.getByRole('button', { name: 'Accept the proposed time' }).click();
    await page.getByRole('heading', { name: 'Reschedule in progress' }).waitFor({ state: 'detached' });
    a = await detail(booked.id, patient.token);
    assert.ok(same(a.start, proposed), 'the appointment moved to the proposed time');
    assert.equal(a.pending_change ?? null, null);

    await page.reload();
    await page.getByLabel('Reason for cancelling').fill('Feeling better');
    await page.getByRole('button', { name: 'Cancel appointment' }).click();
    await page.getByRole('status').filter({ hasText: 'Appointment cancelled.' }).waitFor();
    assert.equal((await detail(booked.id, patient.token)).status, 'cancelled');
    await page.reload();
    await page.getByTestId('appointment-status').filter({ hasText: 'cancelled' }).waitFor();
    await clinic.close(page, doctor);
  });

  test('a doctor reads the patient’s history (read-only), completes an appointment with notes once it has started, and marks another a no-show', async () => {
    const { complete, noShow, patient } = soon;
    const doctor = await clinic.pageAs(complete.doc);
    await doctor.goto(`/appointments/${complete.id}`);
    const record = doctor.getByTestId('patient-record');
    await record.getByText('Asthma since childhood.').waitFor();
    await record.getByText('B-', { exact: true }).waitFor();
    assert.equal(await record.getByRole('textbox').count(), 0, 'nothing to edit');
    assert.equal(await record.getByRole('button').count(), 0);
    await screen(doctor, 'doctor-patient-record');
    await docShot(doctor, 'doctor-patient-record');
    const stored = await clinic.api('GET', `/api/patients/${patient.id}/record`, complete.doc.token);
    assert.equal(stored.notes, 'Asthma since childhood.');
    // Beside it, the patient's details and insurance, read-only too.
    const details = doctor.getByTestId('patient-details');
    await details.getByText('1979-03-14').waitFor();
    await details.getByText('Northwind Health, member NWH-0042 7781; holder Self Payer (self); covered until 2027-12-31').waitFor();
    assert.equal(await details.getByRole('textbox').count(), 0, 'nothing to edit');
    const profile = await clinic.api('GET', `/api/patients/${patient.id}/profile`, complete.doc.token);
    assert.equal(profile.insurance[0].payer, 'Northwind Health');

    await until('the appointments to have started', () => Date.now() > new Date(noShow.start).getTime() + 1000 && Date.now() > new Date(complete.start).getTime() + 1000, 150_000);
    await doctor.reload();
    await doctor.getByLabel('Notes').fill('Inhaler technique reviewed; come back in a year.');
    await doctor.getByRole('button', { name: 'Complete with notes' }).click();
    await doctor.getByRole('status').filter({ hasText: 'Appointment completed; notes saved.' }).waitFor();
    const done = await detail(complete.id, complete.doc.token);
    assert.equal(done.status, 'completed');
    assert.equal(done.close_reason, 'Inhaler technique reviewed; come back in a year.');
    await doctor.reload();
    await doctor.getByTestId('appointment-status').filter({ hasText: 'completed' }).waitFor();
    await doctor.getByText('Inhaler technique reviewed; come back in a year.').waitFor();
    await clinic.close(doctor);

    const other = await clinic.pageAs(noShow.doc);
    await other.goto(`/appointments/${noShow.id}`);
    await other.getByRole('button', { name: 'Mark no-show' }).click();
    await other.getByRole('status').filter({ hasText: 'Marked as a no-show.' }).waitFor();
    assert.equal((await detail(noShow.id, noShow.doc.token)).status, 'no_show');
    await other.reload();
    await other.getByTestId('appointment-status').filter({ hasText: 'missed (no-show)' }).waitFor();
    await clinic.close(other);
  });

  test('a patient changes the password: a wrong current one and a short new one are said in sentences; the new one signs in', async () => {
    const acct = await newAccount('patient', 'Pax Password');
    const page = await clinic.pageAs(acct);
    await page.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Change your password' }).waitFor();
    await docShot(page, 'change-password');
    clinic.allow(page, 403, /\/api\/auth\/password\/change$/);
    const fresh = `fresh-${stamp}-password`;
    await page.getByLabel('Current password').fill('not the password at all');
    await page.getByLabel('New password (at least 10 characters)').fill(fresh);
    await page.getByLabel('New password again').fill(fresh);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('alert').filter({ hasText: 'Your current password is not right. Type it again.' }).waitFor();
    await page.getByLabel('Current password').fill(acct.password);
    await page.getByLabel('New password (at least 10 characters)').fill('short');
    await page.getByLabel('New password again').fill('short');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('alert').filter({ hasText: 'The new password needs at least 10 characters.' }).waitFor();
    await page.getByLabel('New password (at least 10 characters)').fill(fresh);
    await page.getByLabel('New password again').fill(`${fresh}x`);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByRole('alert').filter({ hasText: 'The two new passwords are not the same.' }).waitFor();
    await page.getByLabel('New password again').fill(fresh);
    await page.getByLabel('New password again').press('Enter');
    await page.getByRole('status').filter({ hasText: 'Your password is changed.' }).waitFor();
    await screen(page, 'change-password-done');
    assert.equal(await page.getByLabel('Current password').inputValue(), '', 'the fields are emptied');
    // Stored: the new password signs in, the old one does not; this tab stays signed in.
    assert.ok(await clinic.token({ ...acct, password: fresh }));
    await assert.rejects(clinic.token(acct), /401/);
    await page.reload();
    await page.getByRole('heading', { name: 'Change your password' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await page.goto('/profile');
    await page.getByLabel('Phone').fill('+33 1 23 45 67 89');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/patients/me/profile', await clinic.token({ ...acct, password: fresh }))).phone, '+33 1 23 45 67 89');
    await clinic.close(page);
  });

  test('sign-up sends the browser’s time zone; the Account page changes it, stored and shown after a reload', async () => {
    const acct = { role: 'patient', email: `zoe.zone.${stamp}@example.test`, password: `pw-${stamp}-long-enough`, name: 'Zoe Zone' };
    const page = await clinic.pageAs(null, { timezoneId: 'Asia/Tokyo' });
    await page.goto('/signup');
    await page.getByLabel('Name').fill(acct.name);
    await page.getByLabel('Email').fill(acct.email);
    await page.getByLabel(/Password/).fill(acct.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Account requested' }).waitFor();
    const token = await clinic.token(acct);
    assert.equal((await clinic.api('GET', '/api/me', token)).time_zone, 'Asia/Tokyo', 'the account has the browser’s zone');

    await clinic.login(page, acct);
    await page.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    const zone = page.getByLabel('Time zone for mails and reminders');
    await zone.waitFor();
    assert.equal(await zone.inputValue(), 'Asia/Tokyo');
    await docShot(page, 'account');
    await zone.selectOption('America/Sao_Paulo');
    await page.getByRole('button', { name: 'Save time zone' }).click();
    await page.getByRole('status').filter({ hasText: 'Time zone saved: mails and reminders now give times in America/Sao_Paulo.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/me', token)).time_zone, 'America/Sao_Paulo', 'stored');
    await screen(page, 'account-time-zone-saved');

    await page.reload();
    await zone.waitFor();
    assert.equal(await zone.inputValue(), 'America/Sao_Paulo', 'the form shows the stored zone after a reload');
    assert.equal(await page.getByTestId('stored-zone').textContent(), 'America/Sao_Paulo');
    assert.equal(await page.getByRole('form', { name: 'Time zone' }).count(), 1, 'one time zone form');
    // Back to the zone this browser is in, with one button.
    await page.getByRole('button', { name: 'Use this browser’s zone (Asia/Tokyo)' }).click();
    await page.getByRole('button', { name: 'Save time zone' }).click();
    await page.getByRole('status').filter({ hasText: 'now give times in Asia/Tokyo.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/me', token)).time_zone, 'Asia/Tokyo');
    // The old address of the page leads here.
    await page.goto('/password');
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await clinic.close(page);
  });

  test('two tabs of one patient reloading at once both stay signed in, and a save after that stores', async () => {
    const acct = await newAccount('patient', 'Tobi Tabs');
    const one = await clinic.pageAs(acct);
    const two = clinic.watch(await one.context().newPage());
    const refreshes = [];
    for (const p of [one, two]) p.on('response', (r) => r.url().endsWith('/api/auth/refresh') && refreshes.push(r.status()));
    await one.goto('/profile');
    await two.goto('/profile');
    for (const p of [one, two]) await p.getByTestId('profile-form').waitFor();
    for (let i = 0; i < 3; i++) {
      await Promise.all([one.reload(), two.reload()]);
      for (const p of [one, two]) {
        await p.getByTestId('profile-form').waitFor();
        await p.getByRole('button', { name: 'Sign out' }).waitFor();
      }
      await Promise.all([one.waitForLoadState('networkidle'), two.waitForLoadState('networkidle')]);
    }
    assert.ok(refreshes.length >= 1, 'the reloads brought the session back');
    assert.ok(refreshes.every((s) => s === 200), `every renewal succeeded: ${refreshes.join(', ')}`);
    await two.getByLabel('Phone').fill('+49 30 7654321');
    await two.getByRole('button', { name: 'Save profile' }).click();
    await two.getByRole('status').filter({ hasText: 'Profile saved.' }).waitFor();
    assert.equal((await clinic.api('GET', '/api/patients/me/profile', acct.token)).phone, '+49 30 7654321');
    await one.reload();
    assert.equal(await one.getByLabel('Phone').inputValue(), '+49 30 7654321');
    // Signing out in one tab signs out the other.
    await one.getByRole('button', { name: 'Sign out' }).click();
    await two.getByRole('heading', { name: 'Sign in to carehub' }).waitFor({ timeout: 10_000 });
    await clinic.close(one, two);
  });

  test('every screen of the table passes axe-core at 1280×800 and at 390×844', async () => {
    const patientAcct = clinic.byEmail('grace.');
    const token = await clinic.token(patientAcct);
    const ines = await doctorByName('Moreau', token);
    const mine = (await clinic.api('GET', '/api/appointments?limit=5', soon.patient.token)).appointments[0];
    const screens = [
      [null, ['/login', '/signup', '/forgot-password', '/reset-password#token=not-a-real-token']],
      [patientAcct, ['/doctors', `/doctors/${ines.id}`, '/book', '/appointments', '/profile', '/notifications', '/account']],
      [soon.patient, [`/appointments/${mine.id}`]],
      [clinic.byEmail('sara.'), ['/offers', '/schedule', '/availability', '/appointments', '/profile']],
      [soon.complete.doc, [`/appointments/${soon.complete.id}`]],
      [clinic.account('admin'), ['/admin', '/admin/users', '/admin/groups', '/admin/appointments', '/admin/audit']],
    ];
    for (const [size, opts] of [['desktop', { viewport: DESKTOP }], ['phone', PHONE]]) {
      for (const [acct, paths] of screens) {
        const page = await clinic.pageAs(acct, opts);
        for (const path of paths) {
          await page.goto(path);
          await page.locator('h1').first().waitFor();
          await screen(page, `${size}${path.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`);
        }
        await clinic.close(page);
      }
    }
    assert.deepEqual(axeProblems, []);
    assert.deepEqual(clinic.cspErrors, [], 'no page broke the Content-Security-Policy');
  });
});
