// The patient's own profile and medical record (`/api/patients/me/...`). Both are versioned:
// a read gives an ETag, an update sends it back as `If-Match`.

import { api, type Versioned } from './api';

export interface Address {
  line1: string;
  line2?: string;
  city: string;
  postal_code: string;
  country: string;
}

export interface EmergencyContact {
  name: string;
  phone: string;
  relationship?: string;
}

export interface ProfileFields {
  date_of_birth?: string;
  phone?: string;
  address?: Address;
  emergency_contact?: EmergencyContact;
}

export interface PatientProfile extends ProfileFields {
  patient_id: string;
  display_name: string | null;
  version: number;
  updated_at: string;
}

/** The blood types the API accepts, as it spells them. */
export const BLOOD_TYPES = ['unknown', 'A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-'] as const;
export type BloodType = (typeof BLOOD_TYPES)[number];

/** A blood type as people write it ("O+", "Unknown"). */
export function bloodTypeLabel(b: BloodType): string {
  return b === 'unknown' ? 'Unknown' : b;
}

export interface Allergy {
  substance: string;
  reaction: string;
  severity: 'mild' | 'moderate' | 'severe' | 'life_threatening' | 'unknown';
}

export interface Condition {
  name: string;
  since?: string;
  notes?: string;
}

export interface Medication {
  name: string;
  dose: string;
  frequency: string;
}

export interface RecordFields {
  allergies: Allergy[];
  conditions: Condition[];
  medications: Medication[];
  blood_type: BloodType;
  notes: string;
}

export interface MedicalRecord extends RecordFields {
  patient_id: string;
  version: number;
  updated_at: string;
}

export const patients = {
  profile: (): Promise<Versioned<PatientProfile>> => api.getVersioned<PatientProfile>('/api/patients/me/profile'),
  /** Replaces every field (absent ones are cleared) if the profile is still at `etag`. */
  saveProfile: (fields: ProfileFields, etag: string) => api.putVersioned<PatientProfile>('/api/patients/me/profile', fields, etag),
  record: (): Promise<Versioned<MedicalRecord>> => api.getVersioned<MedicalRecord>('/api/patients/me/record'),
  /** Replaces the whole record if it is still at `etag`. */
  saveRecord: (fields: RecordFields, etag: string) => api.putVersioned<MedicalRecord>('/api/patients/me/record', fields, etag),
};
