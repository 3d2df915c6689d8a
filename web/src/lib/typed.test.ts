// The client is typed from the OpenAPI document and the hub's frames from their JSON Schema:
// these calls are wrong on purpose, and `tsc` (`npm run build`) fails if any of them stops being
// an error. The functions never run.

import { describe, expect, it } from 'vitest';
import { api } from './api';
import { appointments } from './appointments';
import { doctors } from './doctors';
import type { Hub } from './hub';
import type { BloodType } from './patients';

async function wrongCalls() {
  // @ts-expect-error: the profile's PUT must send the ETag it read as If-Match.
  void api.callVersioned((h) => h.PUT('/api/patients/me/profile', { body: {} }));
  // @ts-expect-error: an instant booking must send an Idempotency-Key.
  void api.call((h) => h.POST('/api/appointments/book', { body: { doctor_id: 'd', start: 's', reason: 'r' } }));
  // @ts-expect-error: a renamed field (the API calls it `specialties`).
  void api.call((h) => h.PUT('/api/doctors/me/profile', { body: { specialty: [], bio: '' } }));
  // @ts-expect-error: a field the API does not take.
  void appointments.book({ doctor_id: 'd', start: 's', reason: 'r', slot_minutes: 30 });
  // @ts-expect-error: a field the API does not answer.
  void (await doctors.myProfile()).biography;
  // @ts-expect-error: blood types are spelled as the API spells them.
  const b: BloodType = 'o_pos';
  // @ts-expect-error: no such path.
  void api.call((h) => h.GET('/api/doctor/me'));
  return b;
}

function wrongFrames(hub: Hub) {
  // @ts-expect-error: no such client frame.
  hub.send({ type: 'launch_missiles' });
  // @ts-expect-error: a `chat_send` needs its client_id.
  hub.send({ type: 'chat_send', room: 'r', body: 'hi' });
  // @ts-expect-error: a misspelt field (the frame calls it `active`).
  hub.send({ type: 'typing', room: 'r', activ: true });
  // @ts-expect-error: seqs are numbers.
  hub.send({ type: 'chat_read', room: 'r', seq: '4' });
  // @ts-expect-error: a chat message has a `body`, no `text`.
  hub.on('chat_message', (f) => f.message.text);
  // @ts-expect-error: the hub sends no such frame.
  hub.on('chat_sent', () => {});
}

describe('the typed client', () => {
  it('is checked by tsc against the OpenAPI document (see wrongCalls)', () => {
    expect(typeof wrongCalls).toBe('function');
  });

  it('is checked by tsc against the frame schema (see wrongFrames)', () => {
    expect(typeof wrongFrames).toBe('function');
  });
});
