// Names for the API's bodies, all generated from the OpenAPI document (`npm run gen:types`); none is
// written by hand, so a renamed field or a changed enum fails `tsc` where it is used.

import type { Schema } from './api';

export type Status = Schema<'AppointmentStatus'>;
export type Appointment = Schema<'Appointment'>;
/** A confirmed appointment a change would cancel, as a 409 `appointments_affected` lists it. */
export type AffectedAppointment = Schema<'AffectedAppointment'>;
export type Offer = Schema<'Offer'>;
export type DoctorSummary = Schema<'DoctorSummary'>;
export type PublicProfile = Schema<'PublicProfile'>;
export type Slot = Schema<'SlotView'>;
export type Group = Schema<'Group'>;
export type Notification = Schema<'Notification'>;
