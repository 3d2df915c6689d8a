// The patient's own profile and medical record (`/api/patients/me/...`). Both are versioned:
// a read gives an ETag, an update sends it back as `If-Match`.

import { api, type Schema, type Versioned } from './api';

export type Address = Schema<'Address'>;
export type EmergencyContact = Schema<'EmergencyContact'>;
export type ProfileFields = Schema<'ProfileFields'>;
export type PatientProfile = Schema<'PatientProfile'>;
export type BloodType = Schema<'BloodType'>;
export type Allergy = Schema<'Allergy'>;
export type Condition = Schema<'Condition'>;
export type Medication = Schema<'Medication'>;
export type RecordFields = Schema<'RecordFields'>;
export type MedicalRecord = Schema<'MedicalRecord'>;

// A record over the generated enum: a blood type added to or dropped from the API fails `tsc`.
const BLOOD_TYPE_LABELS: Record<BloodType, string> = {
  unknown: 'Unknown',
  'A+': 'A+',
  'A-': 'A-',
  'B+': 'B+',
  'B-': 'B-',
  'AB+': 'AB+',
  'AB-': 'AB-',
  'O+': 'O+',
  'O-': 'O-',
};

/** The blood types the API accepts, as it spells them, "unknown" first. */
export const BLOOD_TYPES = Object.keys(BLOOD_TYPE_LABELS) as BloodType[];

/** A blood type as people write it ("O+", "Unknown"). */
export function bloodTypeLabel(b: BloodType): string {
  return BLOOD_TYPE_LABELS[b];
}

export const patients = {
  profile: (): Promise<Versioned<PatientProfile>> => api.callVersioned((h) => h.GET('/api/patients/me/profile')),
  /** Replaces every field (absent ones are cleared) if the profile is still at `etag`. */
  saveProfile: (fields: ProfileFields, etag: string): Promise<Versioned<PatientProfile>> =>
    api.callVersioned((h) => h.PUT('/api/patients/me/profile', { body: fields, params: { header: { 'If-Match': etag } } })),
  record: (): Promise<Versioned<MedicalRecord>> => api.callVersioned((h) => h.GET('/api/patients/me/record')),
  /** Replaces the whole record if it is still at `etag`. */
  saveRecord: (fields: RecordFields, etag: string): Promise<Versioned<MedicalRecord>> =>
    api.callVersioned((h) => h.PUT('/api/patients/me/record', { body: fields, params: { header: { 'If-Match': etag } } })),
  /**
   * A patient's record, read-only, for their doctor (with an open offer or an appointment with
   * them) or an admin; `not_found` for anyone else. The read is audited.
   */
  recordOf: (patientId: string): Promise<MedicalRecord> => api.call((h) => h.GET('/api/patients/{id}/record', { params: { path: { id: patientId } } })),
};
