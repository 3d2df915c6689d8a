// Appointments and offers (`/api/appointments/...`, `/api/offers`): requests, instant bookings,
// a doctor's accept or decline, moves, closing. Every body and answer type comes from the
// OpenAPI document through the typed client.

import { api, newKey, type Body } from './api';
import type { Status } from './types';

// A record over the generated enum: a status added to or dropped from the API fails `tsc`.
const STATUS_ORDER: Record<Status, number> = {
  requested: 0,
  offered: 1,
  confirmed: 2,
  completed: 3,
  no_show: 4,
  cancelled: 5,
  expired: 6,
  declined: 7,
};

/** Every appointment status, in the order of an appointment's life. */
export const STATUSES = (Object.keys(STATUS_ORDER) as Status[]).sort((a, b) => STATUS_ORDER[a] - STATUS_ORDER[b]);

const at = (id: string) => ({ params: { path: { id } } });

/** Who a request goes to: exactly one of a group, a specialty or a doctor. */
export type Target = Body<'/api/appointments', 'post'>['target'];

export const appointments = {
  list: (status?: Status) => api.call((h) => h.GET('/api/appointments', { params: { query: { limit: 100, status } } })),
  confirmed: () => api.call((h) => h.GET('/api/appointments', { params: { query: { limit: 100, status: 'confirmed' } } })),
  detail: (id: string) => api.call((h) => h.GET('/api/appointments/{id}', at(id))),
  /** A request inside a window, routed to a group, a specialty or a doctor. */
  request: (body: Body<'/api/appointments', 'post'>) =>
    api.call((h) => h.POST('/api/appointments', { body, params: { header: { 'Idempotency-Key': newKey() } } })),
  /** An instant booking of one of a doctor's free times. */
  book: (body: Body<'/api/appointments/book', 'post'>) =>
    api.call((h) => h.POST('/api/appointments/book', { body, params: { header: { 'Idempotency-Key': newKey() } } })),
  offers: () => api.call((h) => h.GET('/api/offers')),
  accept: (id: string, start: string) =>
    api.call((h) => h.POST('/api/appointments/{id}/accept', { params: { path: { id }, header: { 'Idempotency-Key': newKey() } }, body: { start } satisfies Body<'/api/appointments/{id}/accept', 'post'> })),
  decline: (id: string, reason: string) => api.call((h) => h.POST('/api/appointments/{id}/decline', { ...at(id), body: { reason } satisfies Body<'/api/appointments/{id}/decline', 'post'> })),
  /** The patient asks to move it to another window; the doctor then proposes a time in it. */
  reschedule: (id: string, windowStart: string, windowEnd: string) =>
    api.call((h) => h.POST('/api/appointments/{id}/reschedule', { ...at(id), body: { window_start: windowStart, window_end: windowEnd } satisfies Body<'/api/appointments/{id}/reschedule', 'post'> })),
  propose: (id: string, start: string) => api.call((h) => h.POST('/api/appointments/{id}/propose', { ...at(id), body: { start } satisfies Body<'/api/appointments/{id}/propose', 'post'> })),
  answerProposal: (id: string, accept: boolean) => api.call((h) => h.POST('/api/appointments/{id}/proposal', { ...at(id), body: { accept } satisfies Body<'/api/appointments/{id}/proposal', 'post'> })),
  cancel: (id: string, reason: string) => api.call((h) => h.POST('/api/appointments/{id}/cancel', { ...at(id), body: { reason } satisfies Body<'/api/appointments/{id}/cancel', 'post'> })),
  complete: (id: string, notes: string) => api.call((h) => h.POST('/api/appointments/{id}/complete', { ...at(id), body: { notes } satisfies Body<'/api/appointments/{id}/complete', 'post'> })),
  noShow: (id: string) => api.call((h) => h.POST('/api/appointments/{id}/no-show', at(id))),
};
